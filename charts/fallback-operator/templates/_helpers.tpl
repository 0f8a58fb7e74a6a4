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

{{/*
"true" when the operator serves xDS.
*/}}
{{- define "fallback-operator.xds.enabled" -}}
{{- if .Values.xds.enabled }}true{{- end }}
{{- end }}

{{/*
Name of the Service in front of the operator's xDS port (every replica serves xDS).
*/}}
{{- define "fallback-operator.xds.serviceName" -}}
{{- printf "%s-xds" (include "fallback-operator.fullname" .) }}
{{- end }}

{{/*
The host Envoy dials: the xDS Service by <name>.<namespace>.svc, which the cluster's DNS
search path resolves from any namespace whatever the cluster domain.
*/}}
{{- define "fallback-operator.xds.host" -}}
{{- printf "%s.%s.svc" (include "fallback-operator.xds.serviceName" .) .Release.Namespace }}
{{- end }}

{{/*
The TLS server name Envoy sends (SNI) and checks the server certificate for.
*/}}
{{- define "fallback-operator.xds.serverName" -}}
{{- default (include "fallback-operator.xds.host" .) .Values.xds.tls.serverName }}
{{- end }}

{{/*
TLS mode of the xDS server: generated, secret or plaintext.
*/}}
{{- define "fallback-operator.xds.tlsMode" -}}
{{- $mode := .Values.xds.tls.mode }}
{{- if not (has $mode (list "generated" "secret" "plaintext")) }}
{{- fail (printf "xds.tls.mode must be generated, secret or plaintext, not %q" $mode) }}
{{- end }}
{{- $mode }}
{{- end }}

{{/*
"true" when the xDS server verifies Envoy client certificates (mTLS).
*/}}
{{- define "fallback-operator.xds.mtls" -}}
{{- if and (ne (include "fallback-operator.xds.tlsMode" .) "plaintext") .Values.xds.tls.mtls }}true{{- end }}
{{- end }}

{{/*
Secret with the operator's xDS certificate (tls.crt, tls.key, ca.crt), in the release namespace.
*/}}
{{- define "fallback-operator.xds.serverSecretName" -}}
{{- if eq (include "fallback-operator.xds.tlsMode" .) "secret" }}
{{- required "xds.tls.mode=secret needs xds.tls.serverSecret: a kubernetes.io/tls Secret in the release namespace" .Values.xds.tls.serverSecret }}
{{- else }}
{{- printf "%s-xds-server" (include "fallback-operator.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Secret with the Envoy side (ca.crt, and tls.crt, tls.key for mTLS), in config.namespace.
*/}}
{{- define "fallback-operator.xds.clientSecretName" -}}
{{- if eq (include "fallback-operator.xds.tlsMode" .) "secret" }}
{{- required "xds.tls.mode=secret with the gateway on xDS needs xds.tls.clientSecret: a Secret in config.namespace with ca.crt (and tls.crt, tls.key for mTLS)" .Values.xds.tls.clientSecret }}
{{- else }}
{{- printf "%s-xds-client" (include "fallback-operator.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Where the xDS certificates are mounted, in the operator and in Envoy.
*/}}
{{- define "fallback-operator.xds.certDir" -}}
/etc/fallback/xds
{{- end }}

{{/*
DNS names of the generated server certificate: the xDS Service's names, and serverName.
*/}}
{{- define "fallback-operator.xds.dnsNames" -}}
{{- $svc := include "fallback-operator.xds.serviceName" . }}
{{- $ns := .Release.Namespace }}
{{- $names := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) }}
{{- $names = append $names (include "fallback-operator.xds.serverName" .) | uniq }}
{{- join "," $names }}
{{- end }}

{{/*
The generated certificates as JSON (caCert, serverCert, serverKey, clientCert, clientKey):
the ones in the cluster's Secrets when both exist, are complete, share their CA and were
made for the same DNS names; new ones otherwise. Made once per render and kept in
.Values.xds.tls, so both Secrets and the pods' checksum annotations see the same ones.
*/}}
{{- define "fallback-operator.xds.generatedCerts" -}}
{{- if not (hasKey .Values.xds.tls "_generated") }}
{{- $dnsNames := include "fallback-operator.xds.dnsNames" . }}
{{- $server := lookup "v1" "Secret" .Release.Namespace (include "fallback-operator.xds.serverSecretName" .) }}
{{- $client := lookup "v1" "Secret" (include "fallback-operator.configNamespace" .) (include "fallback-operator.xds.clientSecretName" .) }}
{{- $certs := dict }}
{{- if and $server $client }}
{{- $s := $server.data | default dict }}
{{- $c := $client.data | default dict }}
{{- $names := index ($server.metadata.annotations | default dict) "fallback.dev/xds-dns-names" | default "" }}
{{- if and (index $s "tls.crt") (index $s "tls.key") (index $s "ca.crt") (index $c "tls.crt") (index $c "tls.key") (eq (index $s "ca.crt") (index $c "ca.crt" | default "")) (eq $names $dnsNames) }}
{{- $certs = dict "caCert" (index $s "ca.crt" | b64dec) "serverCert" (index $s "tls.crt" | b64dec) "serverKey" (index $s "tls.key" | b64dec) "clientCert" (index $c "tls.crt" | b64dec) "clientKey" (index $c "tls.key" | b64dec) }}
{{- end }}
{{- end }}
{{- if not $certs }}
{{- $days := int .Values.xds.tls.generated.validityDays }}
{{- $ca := genCA (printf "%s-xds-ca" (include "fallback-operator.fullname" .)) $days }}
{{- $sans := list }}
{{- range splitList "," $dnsNames }}
{{- $sans = append $sans . }}
{{- end }}
{{- $serverCert := genSignedCert (include "fallback-operator.xds.serverName" .) nil $sans $days $ca }}
{{- $clientCert := genSignedCert (include "fallback-operator.envoy.fullname" .) nil nil $days $ca }}
{{- $certs = dict "caCert" $ca.Cert "serverCert" $serverCert.Cert "serverKey" $serverCert.Key "clientCert" $clientCert.Cert "clientKey" $clientCert.Key }}
{{- end }}
{{- $_ := set .Values.xds.tls "_generated" $certs }}
{{- end }}
{{- toJson .Values.xds.tls._generated }}
{{- end }}

{{/*
Checksum of the xDS certificates the pods read at start (generated mode only: the chart
cannot see a Secret it does not make), so that new certificates restart them.
*/}}
{{- define "fallback-operator.xds.certChecksum" -}}
{{- if and (include "fallback-operator.xds.enabled" .) (eq (include "fallback-operator.xds.tlsMode" .) "generated") }}
{{- include "fallback-operator.xds.generatedCerts" . | sha256sum }}
{{- end }}
{{- end }}

{{/*
"true" when the chart's Envoy gateway gets its config over xDS.
*/}}
{{- define "fallback-operator.envoy.xds" -}}
{{- if and .Values.envoy.enabled (eq .Values.envoy.configSource "xds") }}true{{- end }}
{{- end }}

{{/*
Name of the gateway's bootstrap ConfigMap (configSource xds).
*/}}
{{- define "fallback-operator.envoy.bootstrapName" -}}
{{- printf "%s-bootstrap" (include "fallback-operator.envoy.fullname" .) }}
{{- end }}

{{/*
What the operator writes besides serving xDS (--config-output): configmap or none.
*/}}
{{- define "fallback-operator.configOutput" -}}
{{- if .Values.config.output }}
{{- .Values.config.output }}
{{- else if or (not .Values.xds.enabled) (and .Values.envoy.enabled (eq .Values.envoy.configSource "configmap")) }}
{{- "configmap" }}
{{- else }}
{{- "none" }}
{{- end }}
{{- end }}

{{/*
Refuses value combinations that would leave Envoy without config. Included by the
operator Deployment, so every render runs it.
*/}}
{{- define "fallback-operator.validate" -}}
{{- $output := include "fallback-operator.configOutput" . }}
{{- if and (not .Values.xds.enabled) (eq $output "none") }}
{{- fail "config.output=none with xds.enabled=false: the operator would give Envoy nothing" }}
{{- end }}
{{- if and (include "fallback-operator.envoy.xds" .) (not .Values.xds.enabled) }}
{{- fail "envoy.configSource=xds needs xds.enabled=true; for the ConfigMap-only mode set envoy.configSource=configmap too" }}
{{- end }}
{{- if and .Values.envoy.enabled (eq .Values.envoy.configSource "configmap") (eq $output "none") }}
{{- fail "envoy.configSource=configmap needs the ConfigMap: leave config.output empty or set it to configmap" }}
{{- end }}
{{- if .Values.xds.enabled }}
{{- $_ := include "fallback-operator.xds.tlsMode" . }}
{{- $_ := include "fallback-operator.xds.serverSecretName" . }}
{{- if include "fallback-operator.envoy.xds" . }}
{{- $_ := include "fallback-operator.xds.clientSecretName" . }}
{{- end }}
{{- end }}
{{- end }}
