-- Identical repeats of a keyed record (_key, _row_hash are built from the contract's key and
-- stored fields): later copies within the file, and copies of a record already loaded
-- (_lc_existing). Loading them again would double-count the episode. Only rows whose key
-- repeats or is already loaded carry a _row_hash, so the scans below touch just those.
with versions as (
    select _key, min(_row_number) as first_row
    from _lc_ok
    where _row_hash is not null
    group by _key
    having count(*) > 1 and count(distinct _row_hash) = 1
)

select b._row_number, 'repeats data row ' || v.first_row || ' of this file' as detail
from _lc_ok as b
join versions as v on v._key = b._key
where b._row_hash is not null and b._row_number > v.first_row

union all

select b._row_number, 'identical to a record already loaded' as detail
from _lc_ok as b
where b._row_hash is not null
    and exists (select 1 from _lc_existing as e where e._key = b._key and e._row_hash = b._row_hash)
