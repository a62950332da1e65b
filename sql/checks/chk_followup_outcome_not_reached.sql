-- Abstinence recorded for a person who was not reached: the outcome cannot be known (warning).
select _row_number, 'abstinent_30d given although status is not reached' as detail
from _lc_ok
where abstinent_30d is not null and status <> 'reached'
