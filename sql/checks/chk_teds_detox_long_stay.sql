-- TEDS-D detox discharges with LOS code above 30 (more than 30 days): implausible (warning).
select _row_number, 'detox discharge with LOS code above 30' as detail
from _lc_ok
where level_of_care = 'detox' and los_code > 30
