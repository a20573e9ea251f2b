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
