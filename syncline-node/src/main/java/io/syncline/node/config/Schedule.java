package io.syncline.node.config;

import com.cronutils.model.CronType;
import com.cronutils.model.definition.CronDefinitionBuilder;
import com.cronutils.model.time.ExecutionTime;
import com.cronutils.parser.CronParser;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZonedDateTime;

/**
 * When a channel's changes travel ({@code channels[].schedule}): at once ({@code realtime}, the default), every fixed
 * interval ({@code 15m}), or at the times of a five-field cron expression ({@code 0 2 * * *}: at 02:00 every night, in
 * the time zone of the node that keeps the schedule). Immutable and thread-safe.
 */
public sealed interface Schedule {
    /** Real time: sealed and sent as soon as the database reports a commit. */
    Schedule REALTIME = new RealTime();

    /** Real time: sealed and sent as soon as the database reports a commit. */
    record RealTime() implements Schedule {
        @Override
        public Instant next(Instant after, ZoneId zone) {
            return after;
        }
    }

    /** Every {@code interval}. */
    record Every(Duration interval) implements Schedule {
        @Override
        public Instant next(Instant after, ZoneId zone) {
            return after.plus(interval);
        }
    }

    /** At the times of a cron expression (minute hour day-of-month month day-of-week). */
    record Cron(String expression, ExecutionTime times) implements Schedule {
        @Override
        public Instant next(Instant after, ZoneId zone) {
            return times.nextExecution(ZonedDateTime.ofInstant(after, zone)).map(ZonedDateTime::toInstant)
                    .orElse(Instant.MAX);
        }
    }

    /** The first time the channel is due after {@code after}. */
    Instant next(Instant after, ZoneId zone);

    /** When a channel with this schedule is first due after a start at {@code now}: at once for an interval, at the next time of a cron expression. */
    default Instant first(Instant now, ZoneId zone) {
        return this instanceof Cron ? next(now, zone) : now;
    }

    /** Whether this is {@link #REALTIME}. */
    default boolean realtime() {
        return this instanceof RealTime;
    }

    /** The key under which a node keeps when a channel with a schedule is next due: a new schedule starts afresh. */
    static String dueKey(io.syncline.api.ChannelSpec channel) {
        return channel.name() + '\0' + channel.schedule();
    }

    /** The schedule of a channel (its text was checked when the hub read its configuration). */
    static Schedule ofChannel(io.syncline.api.ChannelSpec channel) {
        return of(channel.schedule());
    }

    /**
     * Parses {@code realtime} (or null), a duration ({@code 30s}, {@code 15m}, {@code 1h}) or a five-field cron expression.
     *
     * @throws IllegalArgumentException naming the text and what was expected
     */
    static Schedule of(String text) {
        if (text == null || text.isBlank() || text.trim().equalsIgnoreCase("realtime")) {
            return REALTIME;
        }
        String t = text.trim();
        if (!t.contains(" ")) {
            Duration d;
            try {
                d = NodeConfig.parseDuration(t);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("expected 'realtime', a duration such as 15m or a cron expression such as "
                        + "'0 2 * * *', got '" + text + "'");
            }
            if (d.isZero() || d.isNegative()) {
                throw new IllegalArgumentException("a schedule's interval must be positive, got '" + text + "'");
            }
            return new Every(d);
        }
        try {
            com.cronutils.model.Cron cron = new CronParser(CronDefinitionBuilder.instanceDefinitionFor(CronType.UNIX)).parse(t).validate();
            return new Cron(t, ExecutionTime.forCron(cron));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("'" + text + "' is not a cron expression of five fields (minute hour day-of-month month "
                    + "day-of-week), e.g. '0 2 * * *': " + e.getMessage());
        }
    }
}
