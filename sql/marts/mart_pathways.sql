-- A person's native episodes in order, with step-downs, readmissions and aftercare (conventions in
-- int_pathways.sql and docs/interfaces.md). Episodes without a person_id are left out: they
-- link to nothing.
with

pathways as (
    select * from int_pathways
),

final as (
    select
        person_id,
        episode_seq,
        episode_key,
        previous_episode_key,
        next_episode_key,
        level_of_care,
        level_group,
        admit_date,
        discharge_date,
        discharge_reason,
        data_end_date,
        days_observed,
        stepdown_iop_14d,
        days_to_stepdown,
        readmit_30d,
        readmit_90d,
        readmit_180d,
        days_to_readmission,
        followup_care_7d,
        followup_care_30d,
        days_to_followup_care,
        stepdown_14d,
        stepdown_30d,
        further_care_30d
    from pathways
    where person_id is not null
)

select * from final
