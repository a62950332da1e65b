-- The same key with different content: within the file every copy is quarantined (neither
-- can be trusted); against the warehouse the new row is quarantined, never an overwrite.
-- Only rows whose key repeats or is already loaded carry a _row_hash.
with conflicting as (
    select _key
    from _lc_ok
    where _row_hash is not null
    group by _key
    having count(distinct _row_hash) > 1
)

select b._row_number, 'key repeats with different content within this file' as detail
from _lc_ok as b
join conflicting as c on c._key = b._key
where b._row_hash is not null

union all

select b._row_number, 'key already loaded with different content' as detail
from _lc_ok as b
where b._row_hash is not null
    and exists (select 1 from _lc_existing as e where e._key = b._key and e._row_hash <> b._row_hash)
    and not exists (select 1 from _lc_existing as e where e._key = b._key and e._row_hash = b._row_hash)
