{{/* Names, labels and the values several templates derive. */}}

{{- define "quiver.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's base name; the Services' names add at most 9 characters to it. */}}
{{- define "quiver.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "quiver.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "quiver.selectorLabels" -}}
app.kubernetes.io/name: {{ include "quiver.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "quiver.labels" -}}
helm.sh/chart: {{ include "quiver.chart" . }}
{{ include "quiver.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: quiver
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* An object's metadata. Takes a dict: ctx (the root), name, and optionally namespace,
     component (app.kubernetes.io/component), labels and annotations (besides the common ones). */}}
{{- define "quiver.metadata" -}}
{{- $ctx := .ctx -}}
name: {{ .name }}
namespace: {{ .namespace | default $ctx.Release.Namespace }}
labels:
  {{- include "quiver.labels" $ctx | nindent 2 }}
  {{- with .component }}
  app.kubernetes.io/component: {{ . }}
  {{- end }}
  {{- with .labels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with merge (deepCopy (.annotations | default dict)) $ctx.Values.commonAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "quiver.headless" -}}
{{- printf "%s-headless" (include "quiver.fullname" .) -}}
{{- end -}}

{{/* The leading pod's name (pod 0 unless leaderOrdinal says otherwise). */}}
{{- define "quiver.leaderPod" -}}
{{- printf "%s-%d" (include "quiver.fullname" .) (int .Values.leaderOrdinal) -}}
{{- end -}}

{{/* The leading pod's stable DNS name, which every replica follows. */}}
{{- define "quiver.leaderHost" -}}
{{- printf "%s.%s.%s.svc.%s" (include "quiver.leaderPod" .) (include "quiver.headless" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{- define "quiver.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "quiver.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "quiver.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "quiver.secretName" -}}
{{- default (include "quiver.fullname" .) .Values.auth.existingSecret -}}
{{- end -}}

{{- define "quiver.secretKey" -}}
{{- if .Values.auth.existingSecret -}}
{{- .Values.auth.existingSecretPasswordKey -}}
{{- else -}}
quiver-password
{{- end -}}
{{- end -}}

{{/* The password the chart's own Secret holds: the value given, else the one an earlier
     release stored (so an upgrade keeps it), else a new random one. */}}
{{- define "quiver.password" -}}
{{- if .Values.auth.password -}}
{{- .Values.auth.password -}}
{{- else -}}
{{- $old := lookup "v1" "Secret" .Release.Namespace (include "quiver.fullname" .) -}}
{{- if and $old $old.data (hasKey $old.data "quiver-password") -}}
{{- index $old.data "quiver-password" | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A config value as the server reads it: booleans as yes/no, anything else as written. */}}
{{- define "quiver.configValue" -}}
{{- if kindIs "bool" . -}}
{{- ternary "yes" "no" . -}}
{{- else if kindIs "float64" . -}}
{{- if eq (float64 (int64 .)) . -}}{{- int64 . -}}{{- else -}}{{- . -}}{{- end -}}
{{- else -}}
{{- . -}}
{{- end -}}
{{- end -}}

{{/* A probe running ping.sh: mode "ready" (PONG only) or "alive" (PONG or LOADING). */}}
{{- define "quiver.probe" -}}
exec:
  command: ["/bin/sh", "/opt/quiver/conf/ping.sh", {{ .mode | quote }}, {{ .probe.timeoutSeconds | quote }}]
initialDelaySeconds: {{ .probe.initialDelaySeconds }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
successThreshold: {{ .probe.successThreshold }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end -}}
