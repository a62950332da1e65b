-- Each native episode's place in its person's sequence of episodes, with step-down and
-- readmission flags. Conventions (docs/interfaces.md, "Pathways"):
-- * step-down: a residential discharge followed by an IOP admission 0-14 days after it;
-- * continuity, not readmission (HEDIS-like): the step-down admission itself, and after a
--   discharge with reason 'transferred' the first admission within 14 days;
-- * readmission within N days: any other admission 0-N days after discharge; null when the
--   data end before discharge + N and no readmission was seen (too soon to know).
-- Aftercare continuity (same too-soon rule; an admission on the discharge day counts, gap 0):
-- * follow-up care: the first later admission at an ambulatory level (outpatient, IOP, PHP);
--   followup_care_7d / _30d for residential, detox and inpatient discharges (HEDIS FUI-like);
-- * stepdown_14d / _30d: residential discharges followed by outpatient, IOP or PHP (unlike
--   stepdown_iop_14d, any of the three; neither changes what counts as a readmission);
-- * further_care_30d: IOP discharges followed by an admission at any level within 30 days.
-- The data end date is the $data_end_date parameter, or else the latest admission or
-- discharge date in the data.
with

episodes as (
    select
        episode_key,
        episode_row,
        person_id,
        level_of_care,
        level_group,
        admit_date,
        discharge_date,
        discharge_reason
    from int_episodes
    where source = 'native'
),

data_end as (
    select
        coalesce(
            cast($data_end_date as date),
            max(greatest(admit_date, discharge_date))
        ) as data_end_date
    from episodes
),

later_admissions as (
    select
        idx.episode_key,
        idx.episode_row,
        idx.level_group as index_level_group,
        idx.discharge_reason as index_discharge_reason,
        nxt.episode_key as next_episode_key,
        nxt.level_of_care as next_level_of_care,
        datediff('day', idx.discharge_date, nxt.admit_date) as gap_days
    from episodes as idx
    inner join episodes as nxt
        on nxt.person_id = idx.person_id
        and nxt.episode_row <> idx.episode_row
        and nxt.admit_date >= idx.discharge_date
),

ranked as (
    select
        *,
        row_number() over (
            partition by episode_row order by gap_days, next_episode_key
        ) as admission_rank,
        row_number() over (
            partition by episode_row, next_level_of_care = 'iop' order by gap_days, next_episode_key
        ) as same_kind_rank
    from later_admissions
),

classified as (
    select
        *,
        (
            index_level_group = 'residential'
            and next_level_of_care = 'iop'
            and same_kind_rank = 1
            and gap_days <= 14
        ) as is_stepdown,
        (
            index_discharge_reason = 'transferred'
            and admission_rank = 1
            and gap_days <= 14
        ) as is_transfer
    from ranked
),

per_episode as (
    select
        episode_row,
        bool_or(is_stepdown) as has_stepdown,
        min(gap_days) filter (where not is_stepdown and not is_transfer) as days_to_readmission,
        min(gap_days) filter (where is_stepdown) as days_to_stepdown,
        min(gap_days) filter (
            where next_level_of_care in ('outpatient', 'iop', 'php')
        ) as days_to_followup_care,
        min(gap_days) as days_to_next_admission
    from classified
    group by episode_row
),

sequenced as (
    select
        episodes.*,
        row_number() over (
            partition by person_id order by admit_date, discharge_date, episode_key
        ) as episode_seq,
        lag(episode_key) over (
            partition by person_id order by admit_date, discharge_date, episode_key
        ) as previous_episode_key,
        lead(episode_key) over (
            partition by person_id order by admit_date, discharge_date, episode_key
        ) as next_episode_key
    from episodes
),

final as (
    select
        sequenced.episode_key,
        sequenced.episode_row,
        sequenced.person_id,
        -- a null person_id links nothing: no sequence to speak of
        case when sequenced.person_id is not null then sequenced.episode_seq end as episode_seq,
        case when sequenced.person_id is not null then sequenced.previous_episode_key end
            as previous_episode_key,
        case when sequenced.person_id is not null then sequenced.next_episode_key end
            as next_episode_key,
        sequenced.level_of_care,
        sequenced.level_group,
        sequenced.admit_date,
        sequenced.discharge_date,
        sequenced.discharge_reason,
        data_end.data_end_date,
        datediff('day', sequenced.discharge_date, data_end.data_end_date)::integer as days_observed,
        per_episode.days_to_stepdown::integer as days_to_stepdown,
        case
            when sequenced.person_id is null or sequenced.level_group <> 'residential' then null
            when per_episode.has_stepdown then true
            when datediff('day', sequenced.discharge_date, data_end.data_end_date) >= 14 then false
        end as stepdown_iop_14d,
        case when sequenced.person_id is not null then per_episode.days_to_readmission end::integer
            as days_to_readmission,
        case
            when sequenced.person_id is null then null
            when per_episode.days_to_readmission <= 30 then true
            when datediff('day', sequenced.discharge_date, data_end.data_end_date) >= 30 then false
        end as readmit_30d,
        case
            when sequenced.person_id is null then null
            when per_episode.days_to_readmission <= 90 then true
            when datediff('day', sequenced.discharge_date, data_end.data_end_date) >= 90 then false
        end as readmit_90d,
        case
            when sequenced.person_id is null then null
            when per_episode.days_to_readmission <= 180 then true
            when datediff('day', sequenced.discharge_date, data_end.data_end_date) >= 180 then false
        end as readmit_180d,
        case when sequenced.person_id is not null then per_episode.days_to_followup_care end::integer
            as days_to_followup_care,
        case
            when sequenced.person_id is null
                or not coalesce(sequenced.level_group in ('residential', 'detox', 'inpatient'), false)
                then null
            when per_episode.days_to_followup_care <= 7 then true
            when datediff('day', sequenced.discharge_date, data_end.data_end_date) >= 7 then false
        end as followup_care_7d,
        case
            when sequenced.person_id is null
                or not coalesce(sequenced.level_group in ('residential', 'detox', 'inpatient'), false)
                then null
            when per_episode.days_to_followup_care <= 30 then true
            when datediff('day', sequenced.discharge_date, data_end.data_end_date) >= 30 then false
        end as followup_care_30d,
        case
            when sequenced.person_id is null
                or sequenced.level_group is distinct from 'residential' then null
            when per_episode.days_to_followup_care <= 14 then true
            when datediff('day', sequenced.discharge_date, data_end.data_end_date) >= 14 then false
        end as stepdown_14d,
        case
            when sequenced.person_id is null
                or sequenced.level_group is distinct from 'residential' then null
            when per_episode.days_to_followup_care <= 30 then true
            when datediff('day', sequenced.discharge_date, data_end.data_end_date) >= 30 then false
        end as stepdown_30d,
        case
            when sequenced.person_id is null
                or sequenced.level_group is distinct from 'iop' then null
            when per_episode.days_to_next_admission <= 30 then true
            when datediff('day', sequenced.discharge_date, data_end.data_end_date) >= 30 then false
        end as further_care_30d
    from sequenced
    cross join data_end
    left join per_episode on per_episode.episode_row = sequenced.episode_row
)

select * from final
