//! Label selectors in the spec (allowFrom, a migration's source) are copied into
//! NetworkPolicies: what the API server would refuse there is refused at admission here,
//! naming the spec's field, instead of surfacing later as a refused child. The maps and lists
//! are bounded (`bounds::selector`) so that the API server's cost estimate admits the rule.

/// A label key: an optional DNS-subdomain prefix and '/', then a name of letters, digits,
/// '-', '_' and '.' that starts and ends with a letter or digit.
const KEY: &str = "'^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'";
/// A label value: empty, or like a key's name.
const VALUE: &str = "'^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$'";

/// The CEL rule a selector must pass (also checked by `render` and the operator).
pub fn rule() -> String {
    format!(
        "(!has(self.matchLabels) || self.matchLabels.all(k, k.matches({KEY}) && self.matchLabels[k].matches({VALUE}))) \
         && (!has(self.matchExpressions) || self.matchExpressions.all(e, e.key.matches({KEY}) \
         && (e.operator in ['In', 'NotIn'] ? has(e.values) && size(e.values) > 0 : (e.operator in ['Exists', 'DoesNotExist'] && (!has(e.values) || size(e.values) == 0))) \
         && (!has(e.values) || e.values.all(v, v.matches({VALUE})))))"
    )
}

/// The rule's message.
pub const MESSAGE: &str = "a label selector needs label keys and values as Kubernetes accepts them (letters, digits, '-', '_' and '.', at most 63 characters, a key optionally prefixed by a DNS subdomain and '/'), and expressions with operator In or NotIn and values, or Exists or DoesNotExist without";
