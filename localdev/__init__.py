"""Local development: the Functions runner, the Microsoft Graph emulator, Azurite and TLS.

Nothing here is deployed (see .funcignore); it lets anyone run and test the service on a laptop
without an Azure or Microsoft account.
"""
