-- purpose: the index writer's transaction stays open between its COPYs while the run validates (a server's idle-in-transaction timeout would end it)
SELECT set_config('idle_in_transaction_session_timeout', '0', true)
