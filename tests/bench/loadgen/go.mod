module deposit-sentinel/loadgen

go 1.21
