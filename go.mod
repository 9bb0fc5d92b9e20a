module mohawk

go 1.26.8
