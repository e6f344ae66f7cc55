-- purpose: a pricing worker's transaction reads the invoice run's exported snapshot (first statement; {snapshot} is a checked id: SET takes no bind parameter)
SET TRANSACTION SNAPSHOT '{snapshot}'
