module example.invalid/waypost

go 1.19
