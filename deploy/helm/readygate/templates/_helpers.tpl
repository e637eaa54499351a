{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "readygate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: release-chart, unless the release name already holds the chart name. */}}
{{- define "readygate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "readygate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "readygate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "readygate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "readygate.labels" -}}
helm.sh/chart: {{ include "readygate.chart" . }}
{{ include "readygate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "readygate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "readygate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding DATABASE_URL and REDIS_URL: an existing one or the chart's. */}}
{{- define "readygate.secretName" -}}
{{- if .Values.secret.existingSecret -}}
{{- .Values.secret.existingSecret -}}
{{- else -}}
{{- include "readygate.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "readygate.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* True ("true") when the program will use Redis: CACHE_TYPE=redis, redis-sentinel or redis-cluster, case-insensitive like the program. */}}
{{- define "readygate.usesRedis" -}}
{{- if has (lower (toString .Values.config.CACHE_TYPE)) (list "redis" "redis-sentinel" "redis-cluster") -}}true{{- end -}}
{{- end -}}

{{/*
readygate.retryBudgetMs: the worst-case start-up time, in ms, that readygate may
spend on its dependencies before it opens its port (its /health is closed
until then). It is the program's own RetryPolicy::worst_case_budget, to the
millisecond (deploy/helm/retry-budgets.json holds a table of settings and
budgets that the program's tests and the chart lint both check).

For one dependency (prefix P: DB or REDIS):

    P_MAX_RETRIES x P_CONNECT_TIMEOUT_MS         every attempt runs into its timeout
  + the sum of the P_MAX_RETRIES - 1 waits, each at its longest, w + floor(w x jitter)

where the first wait w is P_RETRY_INTERVAL_MS and, with P_RETRY_BACKOFF=exponential,
each next one is ceil(w x P_RETRY_MULTIPLIER), at most P_RETRY_MAX_INTERVAL_MS (a
geometric sum with a cap; fixed: every wait is the interval; a cap below the
interval fails the rendering, as the program refuses it); the whole is at most
P_STARTUP_TIMEOUT_MS when that is not 0 (the program never runs past its
deadline).

The multiplier and the jitter are read as thousandths (readygate.thousandths), so
that all of it is int64 arithmetic, as in the program: no floating point.

The dependencies are attempted concurrently, so the budget is the largest of
the required ones': the database always; Redis when CACHE_TYPE is redis
(or redis-sentinel, redis-cluster) and
CACHE_REQUIRED is not false (with memory or none the program never connects
to it, and an optional cache never holds start-up); WAIT_FOR's entries when it
is set, each with its policy: its own WAIT_FOR_<NAME>_* settings, else the
shared WAIT_FOR_* ones (a fixed interval: MAX_RETRIES x (CONNECT_TIMEOUT_MS +
RETRY_INTERVAL_MS) - RETRY_INTERVAL_MS).

The settings are strings in values.yaml (they go to a ConfigMap) but may be
numbers when given with --set; int64 reads both (values.schema.json has made
sure they are whole numbers in the program's range, without leading zeros).
*/}}
{{- define "readygate.retryBudgetMs" -}}
{{- $c := .Values.config -}}
{{- $budget := include "readygate.dependencyBudgetMs" (dict "config" $c "prefix" "DB") | int64 -}}
{{- if and (include "readygate.usesRedis" .) (ne (lower (include "readygate.str" $c.CACHE_REQUIRED)) "false") -}}
{{- $redis := include "readygate.dependencyBudgetMs" (dict "config" $c "prefix" "REDIS") | int64 -}}
{{- $budget = max $budget $redis -}}
{{- end -}}
{{- /* WAIT_FOR's entries, each with its own policy: config.WAIT_FOR_<NAME>_<SETTING>
     where given (NAME: the entry's name upper-cased, - as _), else the shared
     WAIT_FOR_* (a fixed interval, the database's back-off defaults), as the
     program reads them. Counted whenever WAIT_FOR is set (the chart does not
     read WAIT_FOR_OPTIONAL: counting an optional entry only makes the window
     longer). */ -}}
{{- if ne (include "readygate.str" $c.WAIT_FOR) "" -}}
{{- range $entry := splitList "," (include "readygate.str" $c.WAIT_FOR) -}}
{{- $name := trim (index (splitList "=" $entry) 0) -}}
{{- $p := printf "WAIT_FOR_%s" (upper (replace "-" "_" $name)) -}}
{{- $e := dict -}}
{{- $shared := dict "MAX_RETRIES" $c.WAIT_FOR_MAX_RETRIES "RETRY_INTERVAL_MS" $c.WAIT_FOR_RETRY_INTERVAL_MS "CONNECT_TIMEOUT_MS" $c.WAIT_FOR_CONNECT_TIMEOUT_MS "RETRY_BACKOFF" "fixed" "RETRY_MULTIPLIER" "2" "RETRY_MAX_INTERVAL_MS" "30000" "RETRY_JITTER" "0" "STARTUP_TIMEOUT_MS" "0" -}}
{{- range $setting, $default := $shared -}}
{{- $key := printf "%s_%s" $p $setting -}}
{{- $value := $default -}}
{{- if and (hasKey $c $key) (ne (include "readygate.str" (index $c $key)) "") -}}
{{- $value = index $c $key -}}
{{- end -}}
{{- $_ := set $e $key $value -}}
{{- end -}}
{{- $wait := include "readygate.dependencyBudgetMs" (dict "config" $e "prefix" $p) | int64 -}}
{{- $budget = max $budget $wait -}}
{{- end -}}
{{- end -}}
{{- $budget -}}
{{- end -}}

{{/*
readygate.dependencyBudgetMs: one dependency's budget (see readygate.retryBudgetMs),
from (dict "config" .Values.config "prefix" "DB" or "REDIS").

Exponential waits stop changing once they reach the cap (or at once with a
multiplier of 1): from then on every remaining wait is the same, and the loop
stops. With the accepted settings that happens within 11949 steps (interval
1 ms, multiplier 1.001, cap one day is the slowest; a program test checks
it), so the loop never needs more than its 20000 turns.
*/}}
{{- define "readygate.dependencyBudgetMs" -}}
{{- $c := .config -}}
{{- $p := .prefix -}}
{{- $attempts := int64 (index $c (printf "%s_MAX_RETRIES" $p)) -}}
{{- $timeout := int64 (index $c (printf "%s_CONNECT_TIMEOUT_MS" $p)) -}}
{{- $w := int64 (index $c (printf "%s_RETRY_INTERVAL_MS" $p)) -}}
{{- $jitter := include "readygate.thousandths" (index $c (printf "%s_RETRY_JITTER" $p)) | int64 -}}
{{- $multiplier := 1000 -}}
{{- $cap := $w -}}
{{- if eq (lower (include "readygate.str" (index $c (printf "%s_RETRY_BACKOFF" $p)))) "exponential" -}}
{{- $multiplier = include "readygate.thousandths" (index $c (printf "%s_RETRY_MULTIPLIER" $p)) | int64 -}}
{{- $cap = int64 (index $c (printf "%s_RETRY_MAX_INTERVAL_MS" $p)) -}}
{{- if lt $cap $w -}}
{{- fail (printf "config.%s_RETRY_MAX_INTERVAL_MS (%d) is below config.%s_RETRY_INTERVAL_MS (%d): with exponential back-off the program refuses it (exit 78)" $p $cap $p $w) -}}
{{- end -}}
{{- end -}}
{{- $total := mul $attempts $timeout -}}
{{- $waits := sub $attempts 1 -}}
{{- $counted := 0 -}}
{{- range until (int (min $waits 20000)) -}}
{{- $longest := add $w (div (mul $w $jitter) 1000) -}}
{{- $next := min $cap (div (add (mul $w $multiplier) 999) 1000) -}}
{{- if eq $next $w -}}
{{- break -}}
{{- end -}}
{{- $total = add $total $longest -}}
{{- $w = $next -}}
{{- $counted = add $counted 1 -}}
{{- end -}}
{{- /* Every remaining wait is the current one. */ -}}
{{- $total = add $total (mul (sub $waits $counted) (add $w (div (mul $w $jitter) 1000))) -}}
{{- $deadline := int64 (index $c (printf "%s_STARTUP_TIMEOUT_MS" $p)) -}}
{{- if gt $deadline 0 -}}
{{- $total = min $total $deadline -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/*
readygate.schedule: one dependency's retry settings in words, for NOTES.txt:
"10 attempts, 5000 ms timeout, 2000 ms apart" or "30 attempts, 5000 ms
timeout, waits from 2000 ms, x2 each time, up to 30000 ms, +-0.25 jitter,
within 300000 ms".
*/}}
{{- define "readygate.schedule" -}}
{{- $c := .config -}}
{{- $p := .prefix -}}
{{- $get := dict -}}
{{- range $k := list "MAX_RETRIES" "CONNECT_TIMEOUT_MS" "RETRY_INTERVAL_MS" "RETRY_BACKOFF" "RETRY_MULTIPLIER" "RETRY_MAX_INTERVAL_MS" "RETRY_JITTER" "STARTUP_TIMEOUT_MS" -}}
{{- $_ := set $get $k (include "readygate.str" (index $c (printf "%s_%s" $p $k))) -}}
{{- end -}}
{{- printf "%s attempts, %s ms timeout" $get.MAX_RETRIES $get.CONNECT_TIMEOUT_MS -}}
{{- if eq (lower $get.RETRY_BACKOFF) "exponential" -}}
{{- printf ", waits from %s ms, x%s each time, up to %s ms" $get.RETRY_INTERVAL_MS $get.RETRY_MULTIPLIER $get.RETRY_MAX_INTERVAL_MS -}}
{{- else -}}
{{- printf ", %s ms apart" $get.RETRY_INTERVAL_MS -}}
{{- end -}}
{{- if ne (include "readygate.thousandths" $get.RETRY_JITTER) "0" -}}
{{- printf ", +-%s jitter" $get.RETRY_JITTER -}}
{{- end -}}
{{- if ne (int64 $get.STARTUP_TIMEOUT_MS) 0 -}}
{{- printf ", within %s ms" $get.STARTUP_TIMEOUT_MS -}}
{{- end -}}
{{- end -}}

{{/*
readygate.thousandths: a decimal setting (the back-off multiplier, the jitter:
"2", "1.5", "0.25", at most 3 decimals as values.schema.json demands) as a
whole number of thousandths: 2000, 1500, 250. Digit by digit, since int64 of a
string with a leading zero ("025") would read it as octal.
*/}}
{{- define "readygate.thousandths" -}}
{{- $parts := splitList "." (include "readygate.str" .) -}}
{{- $frac := "" -}}
{{- if gt (len $parts) 1 -}}
{{- $frac = index $parts 1 -}}
{{- end -}}
{{- $frac = trunc 3 (printf "%s000" $frac) -}}
{{- $digits := add (mul (int64 (substr 0 1 $frac)) 100) (mul (int64 (substr 1 2 $frac)) 10) (int64 (substr 2 3 $frac)) -}}
{{- add (mul (int64 (first $parts)) 1000) $digits -}}
{{- end -}}

{{/*
readygate.startupFailureThreshold: the startupProbe's failureThreshold.

The kubelet restarts the container when the startupProbe has failed
failureThreshold times in a row, i.e. after about failureThreshold x
periodSeconds. That window must outlast the retry budget, or the pod is killed
while readygate is still (legitimately) waiting for a dependency, and the
retry settings are pointless. So:

    total     = retryBudgetMs + probes.startup.marginSeconds x 1000
    threshold = floor(total / (periodSeconds x 1000)) + 1

which gives threshold x periodSeconds x 1000 > total >= retry budget + margin,
strictly, for every setting. Example with the defaults (DB only): 3 x (2000 +
5000) = 21000 ms; + 15 s margin = 36000 ms; period 5 s: 36000 / 5000 = 7, + 1
= 8 probes = 40 s > 36 s.

Kubernetes stores failureThreshold as an int32: settings so large that the
threshold does not fit fail the rendering with a message.
*/}}
{{- define "readygate.startupFailureThreshold" -}}
{{- $budgetMs := include "readygate.retryBudgetMs" . | int64 -}}
{{- $totalMs := add $budgetMs (mul .Values.probes.startup.marginSeconds 1000) -}}
{{- $periodMs := mul .Values.probes.startup.periodSeconds 1000 -}}
{{- $threshold := add (div $totalMs $periodMs) 1 -}}
{{- if gt $threshold 2147483647 -}}
{{- fail (printf "startupProbe failureThreshold %d (retry budget %d ms) exceeds the int32 range: lower the retry settings or raise probes.startup.periodSeconds" $threshold $budgetMs) -}}
{{- end -}}
{{- $threshold -}}
{{- end -}}

{{/*
readygate.terminationGracePeriodSeconds: how long the kubelet waits after
SIGTERM before it sends SIGKILL. readygate's own shutdown takes at most
SHUTDOWN_DELAY_MS (serving on with /ready 503) + SHUTDOWN_TIMEOUT_MS (waiting
for in-flight requests), then it exits 0; the grace period must outlast that,
or the kubelet kills the pod mid-drain:

    ceil((SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS) / 1000) + terminationGrace.marginSeconds

With the chart's defaults: ceil((5000 + 10000) / 1000) + 5 = 20 s.
*/}}
{{- define "readygate.terminationGracePeriodSeconds" -}}
{{- $c := .Values.config -}}
{{- $ms := add (int64 $c.SHUTDOWN_DELAY_MS) (int64 $c.SHUTDOWN_TIMEOUT_MS) -}}
{{- add (div (add $ms 999) 1000) .Values.terminationGrace.marginSeconds -}}
{{- end -}}

{{/*
readygate.str: a setting as the text the program reads. Strings pass as they
are; whole numbers (from --set, or parsed from a values file or JSON as
float64) are printed as whole numbers, never as 1e+06; fractional ones (a
multiplier, a jitter) as Go prints them (1.5, 0.25).
*/}}
{{- define "readygate.str" -}}
{{- if kindIs "string" . -}}
{{- . -}}
{{- else if and (or (kindIs "float64" .) (kindIs "float32" .)) (eq (float64 (int64 .)) (float64 .)) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by the main and the init container. */}}
{{- define "readygate.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "readygate.fullname" . }}
{{- /* A URL read from a file (X_FILE) is not passed as X too: both is exit 78. */}}
{{- $dbFile := ne (toString (default "" .Values.config.DATABASE_URL_FILE)) "" }}
{{- $redisFile := ne (toString (default "" .Values.config.REDIS_URL_FILE)) "" }}
{{- if not (and $dbFile $redisFile) }}
env:
  {{- if not $dbFile }}
  - name: DATABASE_URL
    valueFrom:
      secretKeyRef:
        name: {{ include "readygate.secretName" . }}
        key: DATABASE_URL
  {{- end }}
  {{- if not $redisFile }}
  - name: REDIS_URL
    valueFrom:
      secretKeyRef:
        name: {{ include "readygate.secretName" . }}
        key: REDIS_URL
        {{- /* An existing Secret need not carry REDIS_URL unless Redis is used. */}}
        optional: {{ not (include "readygate.usesRedis" .) }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* Mounts shared by the main and the init container. */}}
{{- define "readygate.volumeMounts" -}}
volumeMounts:
  - name: data
    mountPath: /data
  - name: tmp
    mountPath: /tmp
  {{- if .Values.secretFiles.secretName }}
  - name: secret-files
    mountPath: {{ .Values.secretFiles.mountPath }}
    readOnly: true
  {{- end }}
  {{- if or .Values.tlsFiles.secretName .Values.tlsFiles.configMapName }}
  - name: tls-files
    mountPath: {{ .Values.tlsFiles.mountPath }}
    readOnly: true
  {{- end }}
{{- end -}}
