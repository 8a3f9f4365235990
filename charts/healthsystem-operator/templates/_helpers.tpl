{{- define "hs.name" -}}healthsystem-operator{{- end -}}

{{- define "hs.labels" -}}
app.kubernetes.io/name: {{ include "hs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "hs.selector" -}}
app.kubernetes.io/name: {{ include "hs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "hs.fullname" -}}{{ .Release.Name }}-{{ include "hs.name" . }}{{- end -}}
