// The app's user-assigned managed identity: the one principal the function app uses for storage
// (host, tables, queues), its deployment package, Key Vault references, Application Insights
// and, as a federated credential of the Entra app registration, Microsoft Graph.
// A user-assigned identity outlives the app and is known before the app exists, so its roles
// are granted before the app first starts. main.bicep makes a second one with this module, for
// the alert rules, which only reads Application Insights.
param location string
param tags object
param name string

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
