{{/* Names, labels and the settings shared by the worker and the migration Job. */}}

{{- define "bertstream.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "bertstream.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "bertstream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bertstream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The worker pods (not the migration Job's): what the Service, the PDB and the Deployment select. */}}
{{- define "bertstream.workerSelectorLabels" -}}
{{ include "bertstream.selectorLabels" . }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "bertstream.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "bertstream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "bertstream.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "bertstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "bertstream.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The Secret the workers load their secrets from. */}}
{{- define "bertstream.secretName" -}}
{{- .Values.existingSecret | default (include "bertstream.fullname" .) -}}
{{- end -}}

{{/* The bound Kubernetes waits for before SIGKILL: above the drain bound. */}}
{{- define "bertstream.terminationGracePeriod" -}}
{{- $drain := add .Values.preStopSleepSeconds .Values.shutdownTimeoutSecs -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $drain 15 -}}
{{- else if le (int .Values.terminationGracePeriodSeconds) (int $drain) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds + shutdownTimeoutSecs (%v), or Kubernetes kills workers mid-drain" .Values.terminationGracePeriodSeconds $drain) -}}
{{- else -}}
{{- .Values.terminationGracePeriodSeconds -}}
{{- end -}}
{{- end -}}

{{/* Most workers KEDA may run: never more than the input topic's partitions. */}}
{{- define "bertstream.maxReplicas" -}}
{{- $partitions := int .Values.kafka.partitions -}}
{{- if kindIs "invalid" .Values.autoscaling.maxReplicas -}}
{{- $partitions -}}
{{- else if gt (int .Values.autoscaling.maxReplicas) $partitions -}}
{{- fail (printf "autoscaling.maxReplicas (%v) exceeds kafka.partitions (%v): a partition feeds one worker, the others would sit idle" .Values.autoscaling.maxReplicas $partitions) -}}
{{- else -}}
{{- int .Values.autoscaling.maxReplicas -}}
{{- end -}}
{{- end -}}

{{- define "bertstream.kafkaOptName" -}}
{{- printf "KAFKA_OPT_%s" (. | upper | replace "." "_" | replace "-" "_") -}}
{{- end -}}

{{/* The worker's environment (README.md, "Configuration"); secrets come from the Secret. */}}
{{- define "bertstream.env" -}}
{{- $v := .Values -}}
- name: KAFKA_BROKERS
  value: {{ required "kafka.brokers is required: the bootstrap servers of your Kafka" $v.kafka.brokers | quote }}
- name: INPUT_TOPIC
  value: {{ $v.kafka.inputTopic | quote }}
- name: OUTPUT_TOPIC
  value: {{ $v.kafka.outputTopic | quote }}
- name: DLQ_TOPIC
  value: {{ $v.kafka.dlqTopic | quote }}
- name: GROUP_ID
  value: {{ $v.kafka.groupId | quote }}
- name: TOPIC_PARTITIONS
  value: {{ $v.kafka.partitions | int64 | quote }}
- name: TOPIC_REPLICATION
  value: {{ $v.kafka.replication | int64 | quote }}
{{- range $name, $value := $v.kafka.options }}
- name: {{ include "bertstream.kafkaOptName" $name }}
  value: {{ $value | quote }}
{{- end }}
- name: MODEL_DIR
  value: {{ $v.model.dir | quote }}
- name: DEVICE
  value: {{ $v.model.device | quote }}
{{- if $v.model.fp16 }}
- name: FP16
  value: "true"
{{- end }}
{{- if not (kindIs "invalid" $v.model.torchThreads) }}
- name: TORCH_THREADS
  value: {{ $v.model.torchThreads | int64 | quote }}
{{- end }}
{{- if not (kindIs "invalid" $v.model.maxSeqLen) }}
- name: MAX_SEQ_LEN
  value: {{ $v.model.maxSeqLen | int64 | quote }}
{{- end }}
- name: MAX_BATCH_SIZE
  value: {{ $v.batch.maxBatchSize | int64 | quote }}
- name: MAX_BATCH_TOKENS
  value: {{ $v.batch.maxBatchTokens | int64 | quote }}
- name: MAX_WAIT_MS
  value: {{ $v.batch.maxWaitMs | int64 | quote }}
- name: QUEUE_CAPACITY
  value: {{ $v.batch.queueCapacity | int64 | quote }}
- name: QUEUE_MAX_BYTES
  value: {{ $v.batch.queueMaxBytes | int64 | quote }}
- name: MAX_MESSAGE_BYTES
  value: {{ $v.batch.maxMessageBytes | int64 | quote }}
- name: HTTP_ADDR
  value: {{ printf "0.0.0.0:%v" $v.http.port | quote }}
- name: RATE_LIMIT_PER_SEC
  value: {{ $v.http.rateLimitPerSec | int64 | quote }}
- name: RATE_LIMIT_BURST
  value: {{ $v.http.rateLimitBurst | int64 | quote }}
- name: RATE_LIMIT_MAX_CLIENTS
  value: {{ $v.http.rateLimitMaxClients | int64 | quote }}
- name: TRUSTED_PROXIES
  value: {{ $v.http.trustedProxies | quote }}
- name: CORS_ORIGINS
  value: {{ $v.http.corsOrigins | quote }}
- name: MAX_BODY_BYTES
  value: {{ $v.http.maxBodyBytes | int64 | quote }}
- name: MAX_TEXTS_PER_REQUEST
  value: {{ $v.http.maxTextsPerRequest | int64 | quote }}
- name: MAX_TEXT_CHARS
  value: {{ $v.http.maxTextChars | int64 | quote }}
- name: REQUEST_TIMEOUT_MS
  value: {{ $v.http.requestTimeoutMs | int64 | quote }}
- name: HEADER_TIMEOUT_MS
  value: {{ $v.http.headerTimeoutMs | int64 | quote }}
- name: MAX_CONCURRENT_REQUESTS
  value: {{ $v.http.maxConcurrentRequests | int64 | quote }}
- name: SHUTDOWN_TIMEOUT_SECS
  value: {{ $v.shutdownTimeoutSecs | int64 | quote }}
- name: RUST_LOG
  value: {{ $v.logLevel | quote }}
- name: LOG_FORMAT
  value: {{ $v.logFormat | quote }}
{{- with $v.tracing.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
