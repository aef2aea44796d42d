module registry.local/clients/labelfeed

go 1.22
