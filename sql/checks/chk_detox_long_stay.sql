-- Detox (withdrawal management) stays longer than 30 days: implausible, reported as a warning.
select _row_number, 'detox stay longer than 30 days' as detail
from _lc_ok
where level_of_care = 'detox' and datediff('day', admit_date, discharge_date) > 30
