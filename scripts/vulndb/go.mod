module github.com/conveyorci/conveyor/scripts/vulndb

go 1.22
