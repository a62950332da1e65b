-- Discharges dated before their admission. Reads the batch rows that passed row checks (_lc_ok).
select _row_number, 'discharge_date is before admit_date' as detail
from _lc_ok
where discharge_date < admit_date
