// One account for the Functions host, the meeting-ops queues, the tables and deployments.
// Shared keys are off: everything reaches it with a managed identity.
param location string
param tags object
param token string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'st${take(token, 20)}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource deployments 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: 'deploymentpackage'
}

output name string = account.name
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}deploymentpackage'
