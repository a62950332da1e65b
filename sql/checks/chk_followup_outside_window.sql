-- Contacts outside their window's tolerance (_lc_window_tolerance comes from followups.yaml).
-- Contacts before discharge are chk_followup_before_discharge's, not counted here.
with timed as (
    select
        f._row_number,
        f.window_days,
        coalesce(f.days_after_discharge, datediff('day', d.discharge_date, f.contact_date)) as days
    from _lc_ok as f
    left join raw_discharges as d
        on d.site_id = f.site_id and d.episode_id = f.episode_id
)

select distinct
    t._row_number,
    'contact falls outside the tolerance of the ' || t.window_days || '-day window ('
        || w.min_days || ' to ' || w.max_days || ' days after discharge)' as detail
from timed as t
join _lc_window_tolerance as w on w.window_days = t.window_days
where t.days >= 0 and (t.days < w.min_days or t.days > w.max_days)
