-- Contacts dated before the episode's discharge (contact_date, or a negative days_after_discharge).
select distinct f._row_number, 'contact is before the discharge date' as detail
from _lc_ok as f
left join raw_discharges as d
    on d.site_id = f.site_id and d.episode_id = f.episode_id
where coalesce(f.days_after_discharge, datediff('day', d.discharge_date, f.contact_date)) < 0
