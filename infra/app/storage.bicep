// One storage account for the Functions host, the deployment package, the queues and the tables.
//
// This account IS the booking database: bookings (with their audit records), tenants, payment
// events, the sent-mail ledger and the organizer checks live in its tables, and the meeting and
// mail outboxes in its queues. Storage offers no soft delete, versioning or point-in-time
// restore for tables or queues (those exist for blobs only), so the data is protected by:
//   - redundancy: Standard_ZRS by default (three copies in three zones of the region);
//     Standard_GZRS / Standard_RAGZRS add an asynchronous copy in the paired region, for a
//     customer-initiated account failover;
//   - no shared keys and no public blobs: only the app's identity and the deploying user (with
//     data roles, rbac.bicep) reach the data;
//   - an optional CanNotDelete lock on the account (storageDeleteLock);
//   - a deleted account can be recovered for 14 days, best effort, while its name is free;
//   - exports you schedule yourself (docs/deployment.md, "Protecting the booking data").
// Blob soft delete below only protects deployment packages.
param location string
param tags object
param name string

@allowed([
  'Standard_ZRS'
  'Standard_GZRS'
  'Standard_RAGZRS'
  'Standard_LRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
@description('Redundancy of the account that holds every booking.')
param sku string

@description('When true the account is reached only through private endpoints (vnet.bicep).')
param vnetEnabled bool

@description('A CanNotDelete lock on the account: it must be removed before azd down.')
param deleteLock bool

@description('Tables the app reads and writes (shared/storage/*.py).')
param tables array

@description('Queues the app and its triggers use, poison queues included.')
param queues array

@description('Blob container that holds the Flex Consumption deployment package.')
param deploymentContainerName string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  //checkov:skip=CKV_AZURE_206:The SKU is the storageSku parameter, Standard_ZRS unless chosen otherwise (main.bicep); checkov does not follow parameters
  sku: { name: sku }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    dnsEndpointType: 'Standard'
    publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'
    // Without a VNet the app has no fixed address and reaches storage over its public endpoint,
    // with Entra auth only (no shared keys); with vnetEnabled: Deny, no public access.
    //checkov:skip=CKV_AZURE_35:Deny when vnetEnabled; without a VNet the Flex Consumption app reaches storage only through its public endpoint, with Entra auth and no shared keys
    networkAcls: vnetEnabled ? { defaultAction: 'Deny', bypass: 'None' } : { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
    containerDeleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: { publicAccess: 'None' }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tableResources 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for table in tables: {
    parent: tableService
    name: table
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queueResources 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queue in queues: {
    parent: queueService
    name: queue
  }
]

resource lock 'Microsoft.Authorization/locks@2020-05-01' = if (deleteLock) {
  name: 'booking-data-cannot-be-deleted'
  scope: account
  properties: {
    level: 'CanNotDelete'
    notes: 'This account holds every booking (tables) and the meeting and mail outboxes (queues).'
  }
}

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainerName}'
