// Log search alert rules over Application Insights, and the action group that e-mails them.
// Each rule's query is a file in kql/, loaded as it stands, so docs/operations.md can show the
// very text that runs (a test compares them). The rules query the component as their own
// user-assigned identity, which holds Log Analytics Reader on it and nothing else (rbac.bicep).
// Without an alert e-mail the rules still fire and show in the portal's Alerts; nobody is told.
param location string
param tags object
@description('Seeds the rules\' names.')
param token string
param appInsightsId string
@description('Resource id of the rules\' identity.')
param identityId string
@description('Where fired alerts are e-mailed. Empty: no action group.')
param alertEmail string

var hasEmail = !empty(alertEmail)

// One entry a rule. The query's window is the rule's windowSize; frequency is how often it runs.
// `measure` empty: the rule counts result rows; otherwise it aggregates that column.
var rules = [
  {
    name: 'poison-messages'
    displayName: 'A message reached a poison queue'
    description: 'meeting_work_failed, mail_failed or work_failed (ERROR): a booking\'s meeting work, an e-mail or other work (attendance) stopped for good. Runbook: docs/operations.md, "A poison queue has messages".'
    severity: 1
    query: loadTextContent('kql/alert-poison-messages.kql')
    measure: ''
    aggregation: 'Count'
    operator: 'GreaterThan'
    threshold: 0
    windowSize: 'PT5M'
    frequency: 'PT5M'
    dimensions: []
  }
  {
    name: 'meeting-failure-rate'
    displayName: 'Meeting failure rate above 1 %'
    description: 'Share of meeting operations (meetings.operations) that failed over 15 minutes. Runbook: docs/operations.md, "A booking has no link".'
    severity: 2
    query: loadTextContent('kql/alert-meeting-failure-rate.kql')
    measure: 'failureRatePercent'
    aggregation: 'Maximum'
    operator: 'GreaterThan'
    threshold: 1
    windowSize: 'PT15M'
    frequency: 'PT5M'
    dimensions: []
  }
  {
    name: 'graph-error-rate'
    displayName: 'Graph error rate above 1 %'
    description: 'Share of Graph attempts at meeting steps (meetings.attempts) that failed over 15 minutes. Runbook: docs/operations.md, "A booking has no link".'
    severity: 2
    query: loadTextContent('kql/alert-graph-error-rate.kql')
    measure: 'graphErrorRatePercent'
    aggregation: 'Maximum'
    operator: 'GreaterThan'
    threshold: 1
    windowSize: 'PT15M'
    frequency: 'PT5M'
    dimensions: []
  }
  {
    name: 'link-latency-p95'
    displayName: 'Request to link p95 above 5 s'
    description: 'p95 of meetings.link_latency over 15 minutes (weighted by each export interval\'s count; see docs/operations.md). Runbook: docs/operations.md, "A booking has no link".'
    severity: 3
    query: loadTextContent('kql/alert-link-latency-p95.kql')
    measure: 'p95Seconds'
    aggregation: 'Maximum'
    operator: 'GreaterThan'
    threshold: 5
    windowSize: 'PT15M'
    frequency: 'PT5M'
    dimensions: []
  }
  {
    name: 'http-5xx-rate'
    displayName: 'HTTP 5xx above 0.5 % of requests'
    description: 'Share of HTTP requests answered 5xx over 15 minutes. Runbook: docs/operations.md, "HTTP 5xx".'
    severity: 2
    query: loadTextContent('kql/alert-http-5xx-rate.kql')
    measure: 'serverErrorPercent'
    aggregation: 'Maximum'
    operator: 'GreaterThan'
    threshold: json('0.5')
    windowSize: 'PT15M'
    frequency: 'PT5M'
    dimensions: []
  }
  {
    name: 'tenant-credential-unhealthy'
    displayName: 'A tenant\'s Microsoft credential turned unhealthy'
    description: 'tenant_credential_unhealthy: one alert per tenant and reason. Runbook: docs/operations.md, "A tenant\'s credential or policy failed".'
    severity: 1
    query: loadTextContent('kql/alert-tenant-credential-unhealthy.kql')
    measure: 'events'
    aggregation: 'Total'
    operator: 'GreaterThan'
    threshold: 0
    windowSize: 'PT5M'
    frequency: 'PT5M'
    dimensions: [
      { name: 'tenant', operator: 'Include', values: ['*'] }
      { name: 'reason', operator: 'Include', values: ['*'] }
    ]
  }
  {
    name: 'timer-stopped'
    displayName: 'The reconciliation timer stopped running'
    description: 'No reconcile_run in 15 minutes (RECONCILE_SCHEDULE runs it every 5 by default). Runbook: docs/operations.md, "The timer is not running".'
    severity: 1
    query: loadTextContent('kql/alert-timer-stopped.kql')
    measure: 'runs'
    aggregation: 'Total'
    operator: 'LessThan'
    threshold: 1
    windowSize: 'PT15M'
    frequency: 'PT5M'
    dimensions: []
  }
]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (hasEmail) {
  name: 'ag-${token}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'meetings'
    enabled: true
    emailReceivers: [
      {
        name: 'operations'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for rule in rules: {
    name: 'alert-${rule.name}-${token}'
    location: location
    tags: tags
    kind: 'LogAlert'
    identity: {
      type: 'UserAssigned'
      userAssignedIdentities: { '${identityId}': {} }
    }
    properties: {
      displayName: rule.displayName
      description: rule.description
      severity: rule.severity
      enabled: true
      scopes: [appInsightsId]
      evaluationFrequency: rule.frequency
      windowSize: rule.windowSize
      autoMitigate: true
      criteria: {
        allOf: [
          {
            query: rule.query
            timeAggregation: rule.aggregation
            metricMeasureColumn: empty(rule.measure) ? null : rule.measure
            operator: rule.operator
            threshold: rule.threshold
            dimensions: rule.dimensions
            failingPeriods: {
              numberOfEvaluationPeriods: 1
              minFailingPeriodsToAlert: 1
            }
          }
        ]
      }
      actions: {
        actionGroups: hasEmail ? [actionGroup.id] : []
      }
    }
  }
]

output ruleNames array = [for (rule, i) in rules: alertRules[i].name]
output actionGroupId string = hasEmail ? actionGroup.id : ''
