package io.syncline.engine.apply;

import io.syncline.api.BatchId;
import io.syncline.api.Change;
import io.syncline.api.TableSpec;
import io.syncline.api.UnsafePathException;
import io.syncline.api.WaitingForFileException;
import io.syncline.engine.files.SafePath;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.Objects;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/*
 * Rows and files together (docs/files.md): before a row that references a file is written, the file must be at this
 * node. If it is not, the row's batch is refused as a whole with WaitingForFileException (retriable: the sender keeps it
 * and sends it again, and only its source and channel wait). A reference is checked when a row is inserted or loaded,
 * or when an update changes the column; a null or empty value references nothing.
 *
 * Files that never come (deleted at the source before they were sent, or never there) must not hold the channel for
 * ever: maxWait after a batch was first refused, its rows are written without the files still missing, with a warning.
 * The clock runs per batch, not per file, so a batch that references many missing files waits maxWait once. Only the
 * last refused batch of each source and channel is remembered (batches apply in order), in memory: a restart starts the
 * wait again.
 *
 * Thread-safe.
 */
final class FileReferences {
    private static final Logger LOG = LoggerFactory.getLogger(FileReferences.class);
    private final FileGate gate;
    private final Duration maxWait;
    private final Clock clock;
    /** By source and channel: the batch that last waited, and since when. */
    private final Map<String, Waiting> waiting = new java.util.concurrent.ConcurrentHashMap<>();

    private record Waiting(long batch, Instant since) {
    }

    FileReferences(FileGate gate, Duration maxWait, Clock clock) {
        this.gate = Objects.requireNonNull(gate, "gate");
        this.maxWait = Objects.requireNonNull(maxWait, "maxWait");
        this.clock = Objects.requireNonNull(clock, "clock");
    }

    /**
     * Checks the files {@code change} references through {@code spec}'s file columns.
     *
     * @throws WaitingForFileException when one is not here yet and has been waited for less than maxWait
     */
    void check(BatchId id, TableSpec spec, Change change) {
        if (spec.files().isEmpty()) {
            return;
        }
        Map<String, Object> newRow;
        Map<String, Object> oldRow = null;
        switch (change) {
            case Change.Insert i -> newRow = i.newRow();
            case Change.Reload r -> newRow = r.newRow();
            case Change.Update u -> {
                newRow = u.newRow();
                oldRow = u.oldRow();
            }
            default -> {
                return;
            }
        }
        for (Map.Entry<String, String> ref : spec.files().entrySet()) {
            String column = ref.getKey();
            if (oldRow != null && (!oldRow.containsKey(column) || Objects.equals(oldRow.get(column), newRow.get(column)))) {
                continue; // the update left the reference as it was: checked when it was written
            }
            if (newRow.get(column) instanceof String path && !path.isEmpty()) {
                check(id, spec, column, ref.getValue(), path);
            }
        }
    }

    private void check(BatchId id, TableSpec spec, String column, String fileChannel, String path) {
        try {
            SafePath.check(path);
        } catch (UnsafePathException e) {
            LOG.warn("batch {}: table '{}' column '{}' holds '{}', which cannot be a file of file channel '{}' ({}); the row is written "
                    + "without waiting", id, spec.name(), column, path, fileChannel, e.getMessage());
            return;
        }
        Path at = gate.locate(id.source(), fileChannel, path);
        if (at == null || Files.isRegularFile(at, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        Instant now = clock.instant();
        Waiting w = waiting.compute(id.source() + '\0' + id.channel(),
                (k, old) -> old != null && old.batch() == id.sequence() ? old : new Waiting(id.sequence(), now));
        Duration waited = Duration.between(w.since(), now);
        if (waited.compareTo(maxWait) >= 0) {
            LOG.warn("batch {}: table '{}' references file '{}' of file channel '{}', still not here ({}) after the batch waited {}; the "
                    + "row is written without it", id, spec.name(), path, fileChannel, at, maxWait);
            return;
        }
        throw new WaitingForFileException("batch " + id + ": a row of table '" + spec.name() + "' references file '" + path
                + "' of file channel '" + fileChannel + "', which is not here yet (" + at + "); the batch is applied once it is, "
                + "or without it " + maxWait.toSeconds() + " s after it was first held", fileChannel, path);
    }
}
