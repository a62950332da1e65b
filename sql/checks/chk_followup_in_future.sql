-- Contacts dated after the ingest date ($today).
select _row_number, 'contact_date is after the ingest date' as detail
from _lc_ok
where contact_date > $today
