{{- define "relais.fullname" -}}{{ .Release.Name }}-relais{{- end -}}
{{- define "relais.labels" -}}
app.kubernetes.io/name: relais
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
{{- define "relais.env" -}}
envFrom:
  - secretRef:
      name: {{ .Values.existingSecret }}
  - configMapRef:
      name: {{ include "relais.fullname" . }}
{{- end -}}
{{- /*
The migration job is a pre-install hook: it runs before the release's own objects (the
ConfigMap above) exist, so it reads the pre-existing Secret and gets the configuration
inline.
*/ -}}
{{- define "relais.hookEnv" -}}
envFrom:
  - secretRef:
      name: {{ .Values.existingSecret }}
env:
  {{- range $k, $v := .Values.config }}
  - {name: {{ $k }}, value: {{ $v | quote }}}
  {{- end }}
{{- end -}}
