-- Stays longer than two years at any level of care: implausible, reported as a warning.
select _row_number, 'stay longer than 730 days' as detail
from _lc_ok
where datediff('day', admit_date, discharge_date) > 730
