{{/* Names, labels and the per-service pieces shared by the templates. */}}

{{- define "stratus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-stratus, or the release name alone when it already contains the chart name; at most 50 characters
so that "-<service>-write-namespaced" suffixes stay within 63. */}}
{{- define "stratus.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "stratus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stratus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stratus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "stratus.labels" -}}
helm.sh/chart: {{ include "stratus.chart" . }}
{{ include "stratus.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stratus
{{- end }}

{{/* Labels of one service's objects: (dict "root" $ "name" "bridge") */}}
{{- define "stratus.componentLabels" -}}
{{ include "stratus.labels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "stratus.componentSelectorLabels" -}}
{{ include "stratus.selectorLabels" .root }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* <fullname>-<service>: the Deployment, Service and ServiceAccount of one service. */}}
{{- define "stratus.componentName" -}}
{{- printf "%s-%s" (include "stratus.fullname" .root) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stratus.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "stratus.webhookSecretName" -}}
{{- default (printf "%s-webhook" (include "stratus.fullname" .)) .Values.webhook.existingSecret }}
{{- end }}

{{- define "stratus.approvalsSecretName" -}}
{{- default (printf "%s-approvals" (include "stratus.fullname" .)) .Values.approvals.existingSecret }}
{{- end }}

{{- define "stratus.llmSecretName" -}}
{{- default (printf "%s-llm" (include "stratus.fullname" .)) .Values.llm.existingSecret }}
{{- end }}

{{/* True when an LLM key is available from the chart's Secret or an existing one. */}}
{{- define "stratus.hasLlmKey" -}}
{{- if or .Values.llm.apiKey .Values.llm.existingSecret }}true{{- end }}
{{- end }}

{{/* Services whose access is read or write (they get a token and RBAC). */}}
{{/* The detector's volume for the embedding's calibrations (embedding.state). */}}
{{- define "stratus.embeddingStateDir" -}}/var/lib/stratus/embedding{{- end }}

{{- define "stratus.embeddingStateClaim" -}}
{{- .Values.embedding.state.existingClaim | default (printf "%s-embedding-state" (include "stratus.fullname" .)) }}
{{- end }}

{{/* "true" when the detector keeps the embedding's calibrations on a volume. */}}
{{- define "stratus.embeddingState" -}}
{{- if and .Values.embedding.enabled .Values.embedding.state.enabled .Values.services.detector.enabled }}true{{- end }}
{{- end }}

{{- define "stratus.needsApi" -}}
{{- if has .access (list "read" "write") }}true{{- end }}
{{- end }}

{{/* Environment of one service: (dict "root" $ "name" "mitigator" "svc" $svc). Only settings the service's
settings class defines (stratus/settings.py); tests/unit/test_chart.py checks it. */}}
{{- define "stratus.env" -}}
{{- $root := .root }}
{{- $name := .name }}
{{- $svc := .svc }}
{{- $severity := has $name (list "detector" "coordinator" "mitigator") }}
{{- $reasoner := has $name (list "diagnoser" "mitigator") }}
- name: STRATUS_NATS_URL
  value: {{ $root.Values.nats.url | quote }}
{{- if ne $name "bridge" }}
{{- if $root.Values.redis.existingSecret }}
- name: STRATUS_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.redis.existingSecret }}
      key: {{ $root.Values.redis.existingSecretKey }}
{{- else }}
- name: STRATUS_REDIS_URL
  value: {{ $root.Values.redis.url | quote }}
{{- end }}
{{- end }}
- name: STRATUS_LOG_LEVEL
  value: {{ $root.Values.logLevel | quote }}
- name: STRATUS_SUBJECT_PREFIX
  value: {{ $root.Values.bus.subjectPrefix | quote }}
{{- with $root.Values.bus.streamPrefix }}
- name: STRATUS_STREAM_PREFIX
  value: {{ . | quote }}
{{- end }}
{{- with $root.Values.bus.durablePrefix }}
- name: STRATUS_DURABLE_PREFIX
  value: {{ . | quote }}
{{- end }}
- name: STRATUS_PARTITIONS
  value: {{ $root.Values.bus.partitions | quote }}
- name: STRATUS_LOG_FORMAT
  value: {{ $root.Values.bus.logFormat | quote }}
{{- with $root.Values.bus.otlpEndpoint }}
- name: STRATUS_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
- name: STRATUS_METRICS_PORT
  value: {{ $root.Values.metricsPort | quote }}
- name: STRATUS_SCOPES
  value: {{ $root.Values.scopes | toJson | quote }}
- name: STRATUS_INSTANCE
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- if eq $name "bridge" }}
- name: STRATUS_HOST
  value: "0.0.0.0"
- name: STRATUS_PORT
  value: {{ $svc.port | quote }}
- name: STRATUS_WEBHOOK_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "stratus.webhookSecretName" $root }}
      key: {{ $root.Values.webhook.existingSecretKey }}
{{- $notify := $root.Values.notifications }}
{{- $notifySecret := default (printf "%s-notifications" (include "stratus.fullname" $root)) $notify.existingSecret }}
{{- range $key, $var := dict "slack-url" "STRATUS_NOTIFY_SLACK_URL" "webhook-url" "STRATUS_NOTIFY_WEBHOOK_URL" "webhook-token" "STRATUS_NOTIFY_WEBHOOK_TOKEN" }}
{{- $inline := get (dict "slack-url" $notify.slackUrl "webhook-url" $notify.webhookUrl "webhook-token" $notify.webhookToken) $key }}
{{- if or $notify.existingSecret $inline }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ $notifySecret }}
      key: {{ $key }}
      {{- if $notify.existingSecret }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}
- name: STRATUS_NOTIFY_EVENTS
  value: {{ $notify.events | toJson | quote }}
- name: STRATUS_NOTIFY_RATE_PER_MIN
  value: {{ $notify.ratePerMinute | quote }}
{{- if $root.Values.approvals.enabled }}
- name: STRATUS_APPROVAL_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "stratus.approvalsSecretName" $root }}
      key: {{ $root.Values.approvals.existingSecretKey }}
{{- end }}
{{- end }}
{{- if eq $name "coordinator" }}
- name: STRATUS_MODE
  value: {{ $root.Values.modes.default | quote }}
- name: STRATUS_MODES
  value: {{ $root.Values.modes.scopes | toJson | quote }}
- name: STRATUS_APPROVAL_TIMEOUT_S
  value: {{ $root.Values.modes.approvalTimeoutSeconds | quote }}
{{- end }}
{{- if $severity }}
{{- with $root.Values.observability.alertmanagerUrl }}
- name: STRATUS_ALERTMANAGER_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- if $severity }}
{{- $sev := $root.Values.severity }}
- name: STRATUS_MU_W_ALERTS
  value: {{ $sev.weights.alerts | quote }}
- name: STRATUS_MU_W_VIOLATIONS
  value: {{ $sev.weights.violations | quote }}
- name: STRATUS_MU_W_UNHEALTHY
  value: {{ $sev.weights.unhealthy | quote }}
{{- with $sev.sloProbes }}
- name: STRATUS_SLO_PROBES
  value: {{ . | toJson | quote }}
{{- end }}
- name: STRATUS_SLO_MAX_LATENCY_S
  value: {{ $sev.sloMaxLatencySeconds | quote }}
{{- with $sev.sloQueries }}
- name: STRATUS_SLO_QUERIES
  value: {{ . | toJson | quote }}
{{- end }}
- name: STRATUS_STUCK_DELETION_S
  value: {{ $sev.stuckDeletionSeconds | quote }}
{{- if $sev.latency.enabled }}
- name: STRATUS_LATENCY_SLO_ENABLED
  value: "true"
{{- range $key, $var := dict "factor" "STRATUS_LATENCY_FACTOR" "minDeltaSeconds" "STRATUS_LATENCY_MIN_DELTA_S" "windowSeconds" "STRATUS_LATENCY_WINDOW_S" "burstSeconds" "STRATUS_LATENCY_BURST_S" "minSamples" "STRATUS_LATENCY_MIN_SAMPLES" "maxSamples" "STRATUS_LATENCY_MAX_SAMPLES" "learnIntervalSeconds" "STRATUS_LATENCY_LEARN_INTERVAL_S" }}
- name: {{ $var }}
  value: {{ get $sev.latency $key | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- if has $name (list "coordinator" "diagnoser" "mitigator") }}
{{- $mem := $root.Values.memory }}
- name: STRATUS_MEMORY_ENABLED
  value: {{ $mem.enabled | quote }}
{{- if $mem.enabled }}
- name: STRATUS_MEMORY_K
  value: {{ $mem.k | quote }}
- name: STRATUS_MEMORY_MIN_SIMILARITY
  value: {{ $mem.minSimilarity | quote }}
- name: STRATUS_MEMORY_PROPOSE_AT
  value: {{ $mem.proposeAt | quote }}
- name: STRATUS_MEMORY_MAX_ENTRIES
  value: {{ $mem.maxEntries | quote }}
{{- end }}
{{- end }}
{{- if or $severity (eq $name "diagnoser") }}
{{- with $root.Values.observability.prometheusUrl }}
- name: STRATUS_PROMETHEUS_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- if has $name (list "diagnoser" "mitigator") }}
{{- with $root.Values.observability.jaegerUrl }}
- name: STRATUS_JAEGER_URL
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- $emb := $root.Values.embedding }}
{{- if and $emb.enabled (has $name (list "detector" "diagnoser")) }}
- name: STRATUS_EMBEDDING_ENABLED
  value: "true"
{{- with ($emb.prometheusUrl | default $root.Values.observability.prometheusUrl) }}
- name: STRATUS_EMBEDDING_PROMETHEUS_URL
  value: {{ . | quote }}
{{- end }}
- name: STRATUS_EMBEDDING_METRIC_PRESET
  value: {{ $emb.metricPreset | quote }}
{{- if eq $name "detector" }}
- name: STRATUS_EMBEDDING_CALIBRATION
  value: {{ $emb.calibration.windows | quote }}
- name: STRATUS_EMBEDDING_WARMUP_WINDOWS
  value: {{ $emb.calibration.warmupWindows | quote }}
- name: STRATUS_EMBEDDING_CALIBRATION_MARGIN
  value: {{ $emb.calibration.margin | quote }}
- name: STRATUS_EMBEDDING_PERSIST
  value: {{ $emb.calibration.persist | quote }}
- name: STRATUS_EMBEDDING_CLEAR
  value: {{ $emb.calibration.clear | quote }}
- name: STRATUS_EMBEDDING_CLEAR_RATIO
  value: {{ $emb.calibration.clearRatio | quote }}
{{- if $emb.state.enabled }}
- name: STRATUS_EMBEDDING_STATE_FILE
  value: {{ include "stratus.embeddingStateDir" $root }}/calibrations.json
{{- end }}
{{- end }}
{{- end }}
{{- if $reasoner }}
{{- with $root.Values.llm.baseUrl }}
- name: STRATUS_LLM_BASE_URL
  value: {{ . | quote }}
{{- end }}
- name: STRATUS_LLM_MODEL
  value: {{ $root.Values.llm.model | quote }}
{{- if and $root.Values.stepCheck.enabled $root.Values.llm.baseUrl }}
- name: STRATUS_STEP_CHECK_ENABLED
  value: "true"
- name: STRATUS_STEP_CHECK_THRESHOLD
  value: {{ $root.Values.stepCheck.threshold | quote }}
{{- end }}
{{- if include "stratus.hasLlmKey" $root }}
- name: STRATUS_LLM_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "stratus.llmSecretName" $root }}
      key: {{ $root.Values.llm.existingSecretKey }}
{{- end }}
{{- end }}
{{- if eq $name "mitigator" }}
- name: STRATUS_POLICY
  value: {{ $svc.policy | default "auto" | quote }}
{{- if $root.Values.writePolicy.scopes }}
- name: STRATUS_WRITE_POLICY
  value: {{ $root.Values.writePolicy | toJson | quote }}
{{- end }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with $svc.env }}
{{ toYaml . }}
{{- end }}
{{- end }}
