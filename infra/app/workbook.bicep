// The meetings workbook: seed 000's four metrics per tenant (success rate, request to link
// latency, retry rate, Graph error rate), Graph calls by status, poison messages and the tenants
// whose Microsoft credential is unhealthy or expiring, for a time range and one, several or all tenants.
// Every tile's query is a file in kql/ that docs/operations.md shows as it stands; `{Tenant}`
// in it is the workbook's tenant parameter ('*' when all are chosen).
param location string
param tags object
param appInsightsId string
@description('Seeds the workbook\'s id (a GUID, as workbooks need).')
param token string

var componentType = 'microsoft.insights/components'

// A tile reads the chosen time range, except the credential tiles: the timer logs a tenant's
// state only when it changes, so they look back over the logs' whole retention (30 days).
var chosenRange = { timeContextFromParameter: 'TimeRange' }
var retention = { timeContext: { durationMs: 2592000000 } }

var tiles = [
  {
    name: 'success-rate'
    title: 'Success rate (meetings.operations): seed 000 target > 99 %'
    query: loadTextContent('kql/tile-success-rate.kql')
    time: chosenRange
  }
  {
    name: 'link-latency'
    title: 'Request to link latency, seconds (meetings.link_latency): target < 5 s on average'
    query: loadTextContent('kql/tile-link-latency.kql')
    time: chosenRange
  }
  {
    name: 'retry-rate'
    title: 'Retry rate (meetings.attempts, succeeded): target < 10 %'
    query: loadTextContent('kql/tile-retry-rate.kql')
    time: chosenRange
  }
  {
    name: 'graph-error-rate'
    title: 'Graph error rate (meetings.attempts): target < 1 %'
    query: loadTextContent('kql/tile-graph-error-rate.kql')
    time: chosenRange
  }
  {
    name: 'graph-calls'
    title: 'Graph calls by operation and status (graph.calls)'
    query: loadTextContent('kql/tile-graph-calls.kql')
    time: chosenRange
  }
  {
    name: 'poison-messages'
    title: 'Poison messages (meeting_work_failed, mail_failed, work_failed)'
    query: loadTextContent('kql/tile-poison-messages.kql')
    time: chosenRange
  }
  {
    name: 'unhealthy-tenants'
    title: 'Tenants whose Microsoft credential is unhealthy now (last 30 days of checks)'
    query: loadTextContent('kql/tile-unhealthy-tenants.kql')
    time: retention
  }
  {
    name: 'expiring-credentials'
    title: 'Tenants whose secret or certificate expires soon (last 30 days of checks)'
    query: loadTextContent('kql/tile-expiring-credentials.kql')
    time: retention
  }
]

var parameters = {
  type: 9
  name: 'parameters'
  content: {
    version: 'KqlParameterItem/1.0'
    parameters: [
      {
        id: 'time-range'
        version: 'KqlParameterItem/1.0'
        name: 'TimeRange'
        label: 'Time range'
        type: 4
        isRequired: true
        value: { durationMs: 86400000 }
        typeSettings: {
          allowCustom: true
          selectableValues: [
            { durationMs: 3600000 }
            { durationMs: 14400000 }
            { durationMs: 86400000 }
            { durationMs: 604800000 }
            { durationMs: 2592000000 }
          ]
        }
      }
      {
        id: 'tenant'
        version: 'KqlParameterItem/1.0'
        name: 'Tenant'
        label: 'Tenant'
        type: 2
        isRequired: true
        multiSelect: true
        quote: '\''
        delimiter: ','
        query: loadTextContent('kql/workbook-tenants.kql')
        queryType: 0
        resourceType: componentType
        timeContextFromParameter: 'TimeRange'
        value: ['value::all']
        typeSettings: {
          additionalResourceOptions: ['value::all']
          selectAllValue: '*'
          showDefault: false
        }
      }
    ]
  }
}

var about = {
  type: 1
  name: 'about'
  content: {
    json: '## Teams meetings\nSeed 000\'s metrics per tenant from the app\'s OpenTelemetry metrics and logs. Queries and runbooks: docs/operations.md.'
  }
}

var tileContent = {
  version: 'KqlItem/1.0'
  size: 0
  queryType: 0
  resourceType: componentType
  visualization: 'table'
}

var tileItems = [
  for tile in tiles: {
    type: 3
    name: tile.name
    content: union(tileContent, tile.time, { title: tile.title, query: tile.query })
  }
]

var workbook = {
  version: 'Notebook/1.0'
  items: concat([about, parameters], tileItems)
  fallbackResourceIds: [appInsightsId]
}

resource meetingsWorkbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, token, 'meetings-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Teams meetings'
    category: 'workbook'
    sourceId: appInsightsId
    serializedData: string(workbook)
  }
}

output id string = meetingsWorkbook.id
