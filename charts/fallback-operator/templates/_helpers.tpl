{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "fallback-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name: <release>-<chart>, or <release> when it already contains the chart
name. Truncated to 63 characters less room for suffixes such as "-envoy" and "-metrics".
*/}}
{{- define "fallback-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 55 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 55 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart label value: <name>-<version>.
*/}}
{{- define "fallback-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels shared by every resource of the release.
*/}}
{{- define "fallback-operator.commonLabels" -}}
helm.sh/chart: {{ include "fallback-operator.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fallback-operator
{{- end }}

{{/*
Selector labels of the operator.
*/}}
{{- define "fallback-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fallback-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
All labels of operator resources.
*/}}
{{- define "fallback-operator.labels" -}}
{{ include "fallback-operator.commonLabels" . }}
{{ include "fallback-operator.selectorLabels" . }}
{{- end }}

{{/*
Selector labels of the Envoy gateway.
*/}}
{{- define "fallback-operator.envoy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fallback-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: envoy
{{- end }}

{{/*
All labels of Envoy gateway resources.
*/}}
{{- define "fallback-operator.envoy.labels" -}}
{{ include "fallback-operator.commonLabels" . }}
{{ include "fallback-operator.envoy.selectorLabels" . }}
{{- end }}

{{/*
Name of the Envoy gateway's Deployment and Service.
*/}}
{{- define "fallback-operator.envoy.fullname" -}}
{{- printf "%s-envoy" (include "fallback-operator.fullname" .) }}
{{- end }}

{{/*
Name of the operator's ServiceAccount.
*/}}
{{- define "fallback-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fallback-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Namespace of the ConfigMap the operator writes: config.namespace, else the release namespace.
*/}}
{{- define "fallback-operator.configNamespace" -}}
{{- default .Release.Namespace .Values.config.namespace }}
{{- end }}

{{/*
Name of the ConfigMap the operator writes.
*/}}
{{- define "fallback-operator.configName" -}}
{{- required "config.name must not be empty" .Values.config.name }}
{{- end }}

{{/*
"true" when the operator runs with --leader-elect: asked for, or forced by replicaCount > 1
(two active replicas would fight over the same ConfigMap and statuses).
*/}}
{{- define "fallback-operator.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{- end }}
{{- end }}

{{/*
Operator image reference: repository@digest, else repository:tag (tag defaults to appVersion).
*/}}
{{- define "fallback-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}
