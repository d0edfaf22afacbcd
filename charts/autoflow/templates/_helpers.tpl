{{/* Names, labels and the image, shared by every template. */}}

{{- define "autoflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name: the release name when it already says "autoflow". */}}
{{- define "autoflow.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "autoflow.operatorName" -}}
{{- printf "%s-operator" (include "autoflow.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "autoflow.runnerName" -}}
{{- printf "%s-runner" (include "autoflow.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "autoflow.workerName" -}}
{{- printf "%s-worker" (include "autoflow.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "autoflow.metricsName" -}}
{{- printf "%s-operator-metrics" (include "autoflow.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "autoflow.webhookName" -}}
{{- printf "%s-operator-webhook" (include "autoflow.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- /* The ValidatingWebhookConfiguration the operator creates and patches (kopf's managed mode). */}}
{{- define "autoflow.webhookConfiguration" -}}
{{- printf "%s.autoflow.dev" (include "autoflow.operatorName" .) }}
{{- end }}

{{- define "autoflow.serviceAccountName" -}}
{{- default (include "autoflow.operatorName" .) .Values.serviceAccount.name }}
{{- end }}

{{- define "autoflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "autoflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "autoflow.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "autoflow.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: autoflow
{{- end }}

{{- define "autoflow.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
The run store's environment: the URL from store.existingSecret (never a value in a pod spec
when it holds a password), and the Secret's name and key for runner Jobs; or store.url (the
schema refuses one with a password), which runners do not get.
*/}}
{{- define "autoflow.storeEnv" -}}
{{- if .Values.store.existingSecret }}
- name: AUTOFLOW_STORE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.store.existingSecret | quote }}
      key: {{ .Values.store.key | quote }}
- name: AUTOFLOW_STORE_SECRET
  value: {{ .Values.store.existingSecret | quote }}
- name: AUTOFLOW_STORE_SECRET_KEY
  value: {{ .Values.store.key | quote }}
{{- else if .Values.store.url }}
- name: AUTOFLOW_STORE_URL
  value: {{ .Values.store.url | quote }}
{{- end }}
{{- end }}
