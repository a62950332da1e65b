-- Follow-ups whose episode is not a discharge of the same site. Discharge files of the same
-- run are loaded first, so raw_discharges holds the warehouse plus the batch.
select f._row_number, 'no discharge of the same site has this episode_id' as detail
from _lc_ok as f
where not exists (
    select 1 from raw_discharges as d
    where d.site_id = f.site_id and d.episode_id = f.episode_id
)
