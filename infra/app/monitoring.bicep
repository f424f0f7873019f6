// Log Analytics and workspace-based Application Insights. Local (instrumentation key) auth is
// off: the app's identity sends telemetry with Microsoft Entra auth (Monitoring Metrics
// Publisher, see rbac.bicep).
param location string
param tags object
param logAnalyticsName string
param appInsightsName string

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    retentionInDays: 30
    sku: { name: 'PerGB2018' }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    DisableLocalAuth: true
  }
}

output appInsightsName string = appInsights.name
output appInsightsId string = appInsights.id
// Not a credential: with local auth disabled, ingestion also needs an Entra token.
output connectionString string = appInsights.properties.ConnectionString
output logAnalyticsId string = logs.id
