//! System ids derived from an institution's name and city: Serbian in Latin or Cyrillic
//! script, transliterated to ASCII (š->s, č/ć->c, ž->z, đ->dj; Cyrillic likewise), made a
//! DNS label that fits a HealthSystem name (60 characters, so `hs-<name>` is a namespace).

/// The longest HealthSystem name.
pub const MAX_NAME: usize = 60;

/// ASCII for one lower-case character of Serbian Latin or Cyrillic (itself otherwise).
fn transliterate(c: char) -> &'static str {
    match c {
        'š' | 'ш' => "s",
        'č' | 'ć' | 'ч' | 'ћ' | 'ц' => "c",
        'ž' | 'ж' | 'з' => "z",
        'đ' | 'ђ' => "dj",
        'а' => "a",
        'б' => "b",
        'в' => "v",
        'г' => "g",
        'д' => "d",
        'е' => "e",
        'и' => "i",
        'ј' => "j",
        'к' => "k",
        'л' => "l",
        'љ' => "lj",
        'м' => "m",
        'н' => "n",
        'њ' => "nj",
        'о' => "o",
        'п' => "p",
        'р' => "r",
        'с' => "s",
        'т' => "t",
        'у' => "u",
        'ф' => "f",
        'х' => "h",
        'џ' => "dz",
        _ => "",
    }
}

/// `text` as a DNS-label fragment: ASCII letters and digits, everything else one '-'.
pub fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        let ascii = if c.is_ascii_alphanumeric() {
            c.to_string()
        } else {
            transliterate(c).to_string()
        };
        if ascii.is_empty() {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push_str(&ascii);
        }
    }
    out.trim_matches('-').to_string()
}

/// The id of a system without one: the institution's name, with the city added when the
/// name does not already say it, cut at a word to [`MAX_NAME`] characters.
pub fn derive_id(institution: &str, city: &str) -> String {
    let name = slug(institution);
    let city = slug(city);
    let mut id = if city.is_empty() || format!("-{name}-").contains(&format!("-{city}-")) {
        name
    } else {
        format!("{name}-{city}")
    };
    if id.len() > MAX_NAME {
        let cut = id[..=MAX_NAME].rfind('-').unwrap_or(MAX_NAME);
        id.truncate(cut);
    }
    id.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin_diacritics_become_ascii() {
        assert_eq!(
            slug("Stomatološka ordinacija Čačak, Đurđevo & Žabalj"),
            "stomatoloska-ordinacija-cacak-djurdjevo-zabalj"
        );
    }

    #[test]
    fn cyrillic_is_transliterated() {
        assert_eq!(slug("Дом здравља Ћуприја"), "dom-zdravlja-cuprija");
        assert_eq!(slug("Апотека Љиг Њивице Џеп"), "apoteka-ljig-njivice-dzep");
    }

    #[test]
    fn the_city_is_added_unless_the_name_has_it() {
        assert_eq!(
            derive_id("Stomatološka ordinacija Eurolab", "Bečej"),
            "stomatoloska-ordinacija-eurolab-becej"
        );
        assert_eq!(
            derive_id("Poliklinika Jugolab Đakovica", "Đakovica"),
            "poliklinika-jugolab-djakovica"
        );
        // A city that is only part of a word of the name is still added.
        assert_eq!(derive_id("Apoteka Nišava", "Niš"), "apoteka-nisava-nis");
    }

    #[test]
    fn long_names_are_cut_at_a_word() {
        let id = derive_id(
            "Specijalna bolnica za rehabilitaciju i ortopedsku protetiku Banja Koviljača",
            "Loznica",
        );
        assert!(id.len() <= MAX_NAME, "{id}");
        assert!(!id.ends_with('-'));
        assert_eq!(
            id,
            "specijalna-bolnica-za-rehabilitaciju-i-ortopedsku-protetiku"
        );
    }
}
