-- name: derive_bars
-- description: Larger bars derived from a stored finer interval, in session-anchored windows, with n_src and complete.
-- param target: interval to derive, e.g. 5m, 15m, 1h, 1d, 1w (default: 5m)
-- param base: stored interval to derive from (default: 1m)
-- param symbol: one symbol, or NULL for all (default: NULL)
-- param emit_incomplete: true keeps windows missing a base bar, flagged complete = false (default: false)
--
-- The rules of pipeline/derive.py. Only regular-hours base bars count: ts in [open, close)
-- and outside [break_start, break_end). Intraday windows start at the session open, restart
-- at break_end, and are cut at break_start and at the close: window start = segment start
-- + floor((ts - segment start) / target) * target, ts_close = least(start + target, segment
-- end). OHLCV: first open, max high, min low, last close (by ts), summed volume. n_src counts
-- the base bars of a window; complete says it holds every base slot it spans after the cut.
-- 1d: one bar per symbol and session, ts = session date 00:00 UTC, ts_close = the close,
-- complete when every regular base slot holds a bar. 1w (from 1d, or intraday through 1d):
-- ts = Monday 00:00 UTC, session and ts_close = the week's last session and its close,
-- complete when every session of the week has a complete daily bar. Windows without any base
-- bar never appear; incomplete ones only when emit_incomplete.
WITH spec AS (
    SELECT
        regexp_extract(lower(trim($target)), '^([0-9]+)([smhdw])$', 2) AS t_unit,
        TRY_CAST(regexp_extract(lower(trim($target)), '^([0-9]+)([smhdw])$', 1) AS BIGINT) AS t_n,
        regexp_extract(lower(trim($base)), '^([0-9]+)([smhdw])$', 2) AS b_unit,
        TRY_CAST(regexp_extract(lower(trim($base)), '^([0-9]+)([smhdw])$', 1) AS BIGINT) AS b_n
),
sized AS (
    SELECT
        *,
        t_n * CASE t_unit WHEN 's' THEN 1 WHEN 'm' THEN 60 WHEN 'h' THEN 3600 ELSE 0 END AS t_sec,
        b_n * CASE b_unit WHEN 's' THEN 1 WHEN 'm' THEN 60 WHEN 'h' THEN 3600 ELSE 0 END AS b_sec
    FROM spec
),
step AS (
    -- Validate once; t_name and b_name are the canonical names (60m -> 1h, 120s -> 2m).
    SELECT
        CASE
            WHEN t_unit = '' OR t_n = 0 OR (t_unit IN ('d', 'w') AND t_n <> 1) THEN error(
                'target ' || $target || ' is not valid: write a whole number and a unit, e.g. 5m, 15m, 1h, 1d, 1w'
            )
            WHEN b_unit = '' OR b_n = 0 OR (b_unit IN ('d', 'w') AND b_n <> 1) THEN error(
                'base ' || $base || ' is not valid: write a whole number and a unit, e.g. 1m'
            )
            WHEN NOT (
                (t_sec > 0 AND b_sec > 0 AND t_sec % b_sec = 0)
                OR (t_unit = 'd' AND (b_sec > 0 OR b_unit = 'd'))
                OR (t_unit = 'w' AND (b_sec > 0 OR b_unit = 'd'))
            ) THEN error(
                'cannot derive ' || $target || ' bars from ' || $base || ' bars: derive from a finer '
                || 'interval that divides the target (1d from intraday, 1w from 1d or intraday)'
            )
            ELSE t_unit
        END AS t_unit,
        b_unit,
        t_sec * 1000000 AS t_us,
        b_sec * 1000000 AS b_us,
        CASE
            WHEN t_unit IN ('d', 'w') THEN '1' || t_unit
            WHEN t_sec % 3600 = 0 THEN (t_sec // 3600)::VARCHAR || 'h'
            WHEN t_sec % 60 = 0 THEN (t_sec // 60)::VARCHAR || 'm'
            ELSE t_sec::VARCHAR || 's'
        END AS t_name,
        CASE
            WHEN b_unit IN ('d', 'w') THEN '1' || b_unit
            WHEN b_sec % 3600 = 0 THEN (b_sec // 3600)::VARCHAR || 'h'
            WHEN b_sec % 60 = 0 THEN (b_sec // 60)::VARCHAR || 'm'
            ELSE b_sec::VARCHAR || 's'
        END AS b_name
    FROM sized
),
regular AS (
    -- Intraday base bars in regular hours, with the trading segment (open or break_end to
    -- break_start or close) that holds them.
    SELECT
        b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume, cs.session,
        CASE WHEN b.ts >= cs.break_end THEN cs.break_end ELSE cs.open END AS seg_start,
        CASE WHEN b.ts < cs.break_start THEN cs.break_start ELSE cs.close END AS seg_end
    FROM bars AS b
    JOIN calendar_sessions AS cs ON b.ts >= cs.open AND b.ts < cs.close
    CROSS JOIN step
    WHERE step.b_unit IN ('s', 'm', 'h')
        AND b.interval = step.b_name
        AND ($symbol IS NULL OR b.symbol = $symbol)
        AND NOT coalesce(b.ts >= cs.break_start AND b.ts < cs.break_end, false)
),
keyed AS (
    SELECT
        r.*,
        r.seg_start + to_microseconds(
            (epoch_us(r.ts) - epoch_us(r.seg_start)) // step.t_us * step.t_us
        ) AS w_start
    FROM regular AS r, step
    WHERE step.t_unit IN ('s', 'm', 'h')
),
windows AS (
    SELECT
        k.symbol,
        k.session,
        k.w_start AS ts,
        arg_min(k.open, k.ts) AS open,
        max(k.high) AS high,
        min(k.low) AS low,
        arg_max(k.close, k.ts) AS close,
        sum(k.volume) AS volume,
        least(k.w_start + to_microseconds(step.t_us), k.seg_end) AS ts_close,
        count(*) AS n_src,
        count(*) = (epoch_us(least(k.w_start + to_microseconds(step.t_us), k.seg_end))
            - epoch_us(k.w_start) + step.b_us - 1) // step.b_us AS complete
    FROM keyed AS k, step
    GROUP BY k.symbol, k.session, k.w_start, k.seg_end, step.t_us, step.b_us
),
slot_counts AS (
    -- Regular base slots per session: each segment's last slot may be cut short.
    SELECT
        cs.session,
        cs.close,
        (epoch_us(coalesce(cs.break_start, cs.close)) - epoch_us(cs.open) + step.b_us - 1)
            // step.b_us
        + coalesce((epoch_us(cs.close) - epoch_us(cs.break_end) + step.b_us - 1) // step.b_us, 0)
            AS slots
    FROM calendar_sessions AS cs, step
    WHERE step.b_unit IN ('s', 'm', 'h')
),
days AS (
    SELECT
        r.symbol,
        r.session,
        r.session::TIMESTAMPTZ AS ts,
        arg_min(r.open, r.ts) AS open,
        max(r.high) AS high,
        min(r.low) AS low,
        arg_max(r.close, r.ts) AS close,
        sum(r.volume) AS volume,
        sc.close AS ts_close,
        count(*) AS n_src,
        count(*) = sc.slots AS complete
    FROM regular AS r
    JOIN slot_counts AS sc ON sc.session = r.session
    GROUP BY r.symbol, r.session, sc.close, sc.slots
    UNION ALL
    -- A stored daily base: each bar of a session date is one complete day.
    SELECT b.symbol, cs.session, b.ts, b.open, b.high, b.low, b.close, b.volume, cs.close, 1, true
    FROM bars AS b
    JOIN calendar_sessions AS cs ON cs.session = b.ts::DATE
    CROSS JOIN step
    WHERE step.b_unit = 'd'
        AND b.interval = '1d'
        AND ($symbol IS NULL OR b.symbol = $symbol)
),
weeks AS (
    SELECT
        date_trunc('week', session)::DATE AS week,
        max(session) AS last_session,
        max(close) AS close,
        count(*) AS sessions
    FROM calendar_sessions
    GROUP BY 1
),
weekly AS (
    SELECT
        d.symbol,
        w.last_session AS session,
        w.week::TIMESTAMPTZ AS ts,
        arg_min(d.open, d.ts) AS open,
        max(d.high) AS high,
        min(d.low) AS low,
        arg_max(d.close, d.ts) AS close,
        sum(d.volume) AS volume,
        w.close AS ts_close,
        count(*) AS n_src,
        count(*) = w.sessions AND bool_and(d.complete) AS complete
    FROM days AS d
    JOIN weeks AS w ON w.week = date_trunc('week', d.session)::DATE
    CROSS JOIN step
    WHERE step.t_unit = 'w'
    GROUP BY d.symbol, w.week, w.last_session, w.close, w.sessions
),
derived AS (
    SELECT windows.* FROM windows
    UNION ALL
    SELECT days.* FROM days, step WHERE step.t_unit = 'd'
    UNION ALL
    SELECT weekly.* FROM weekly
)
SELECT
    d.symbol,
    step.t_name AS interval,
    d.session,
    d.ts,
    d.open,
    d.high,
    d.low,
    d.close,
    d.volume,
    d.ts_close,
    d.ts_close AS available_at,
    d.n_src::UINTEGER AS n_src,
    d.complete
FROM derived AS d, step
WHERE d.complete OR coalesce($emit_incomplete::BOOLEAN, false)
ORDER BY available_at, d.symbol, d.ts
