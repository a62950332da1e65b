-- Episodes dated after the ingest date ($today): a discharge cannot be in the future.
select
    _row_number,
    case when discharge_date > $today then 'discharge_date is after the ingest date'
         else 'admit_date is after the ingest date' end as detail
from _lc_ok
where discharge_date > $today or admit_date > $today
