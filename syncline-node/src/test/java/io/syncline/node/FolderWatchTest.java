package io.syncline.node;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import io.syncline.api.ChannelSpec;
import io.syncline.api.FileChannelSpec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Which walks the file system's notifications lead to: whole, or only where something changed. */
class FolderWatchTest {
    @TempDir
    Path root;

    private static final FileChannelSpec CHANNEL = new FileChannelSpec("docs", ChannelSpec.Direction.SITE_TO_HUB, null, List.of(), List.of());

    /** Each walk's folders, in order; null stands for a whole walk (Optional.empty()). */
    private final List<Optional<List<String>>> walks = Collections.synchronizedList(new ArrayList<>());
    /** When the last walk was heard of (System.nanoTime). */
    private volatile long lastWalk = System.nanoTime();

    private FolderWatch watch(Duration interval, FolderWatch.Walk walk) throws Exception {
        return new FolderWatch("test-watch", interval, () -> List.of(new FolderWatch.Target(CHANNEL, root)), (t, under, edited, held) -> {
            try {
                return walk.walk(t, under, edited, held);
            } finally { // (counted once it is over: a test that sets up the next walk's answer does not race with it)
                walks.add(Optional.ofNullable(under));
                lastWalk = System.nanoTime();
            }
        });
    }

    private FolderWatch watch() throws Exception {
        return watch(Duration.ofHours(1), (t, under, edited, held) -> true);
    }

    /** Waits for the next walk after those seen so far and returns it. */
    private Optional<List<String>> nextWalk(int seen) {
        await().atMost(Duration.ofSeconds(10)).until(() -> walks.size() > seen);
        return walks.get(seen);
    }

    /** Waits until no walk came for half a second (the events of what was done before have all been walked); returns how many so far. */
    private int quiet() {
        await().atMost(Duration.ofSeconds(10)).until(() -> System.nanoTime() - lastWalk > 500_000_000L);
        return walks.size();
    }

    @Test
    void shouldWalkOnlyTheFolderWhereAFileChangedAndTheWholeFolderAtStartAndForTheTopLevel() throws Exception {
        Files.createDirectories(root.resolve("a/b"));
        Files.createDirectories(root.resolve("c"));
        try (FolderWatch w = watch()) {
            assertThat(nextWalk(0)).as("at start: the whole folder").isEmpty();
            Files.writeString(root.resolve("a/b/f.txt"), "x");
            assertThat(nextWalk(1)).contains(List.of("a/b"));
            Files.writeString(root.resolve("a/b/g.txt"), "y");
            Files.writeString(root.resolve("c/i.txt"), "z");
            await().atMost(Duration.ofSeconds(10)).until(() -> walks.stream().skip(2).flatMap(Optional::stream).flatMap(List::stream)
                    .toList().containsAll(List.of("a/b", "c")));
            assertThat(walks.subList(1, walks.size())).as("no whole walk").allMatch(Optional::isPresent);
            int seen = quiet();
            Files.writeString(root.resolve("top.txt"), "t");
            assertThat(nextWalk(seen)).as("a change in the top level: the whole folder").isEmpty();
            seen = quiet();
            w.wake();
            assertThat(nextWalk(seen)).as("a wake: the whole folder").isEmpty();
        }
    }

    @Test
    void shouldWatchAFolderFromItsCreationAndARenamedFolderUnderItsNewName() throws Exception {
        Files.createDirectories(root.resolve("a/b"));
        try (FolderWatch w = watch()) {
            nextWalk(0);
            Files.createDirectories(root.resolve("a/new/deeper"));
            Files.writeString(root.resolve("a/new/deeper/f.txt"), "x");
            assertThat(nextWalk(1)).as("the folder the new one appeared in").contains(List.of("a"));
            int seen = quiet();
            Files.writeString(root.resolve("a/new/deeper/g.txt"), "y");
            assertThat(nextWalk(seen)).as("a folder made after the start is watched").contains(List.of("a/new/deeper"));

            Files.move(root.resolve("a/b"), root.resolve("a/renamed"));
            await().atMost(Duration.ofSeconds(10)).until(() -> walks.get(walks.size() - 1).equals(Optional.of(List.of("a"))));
            seen = quiet();
            Files.writeString(root.resolve("a/renamed/f.txt"), "z");
            // The file system watches the folder still, and would name it a/b: it is watched again under its new name.
            assertThat(nextWalk(seen)).contains(List.of("a/renamed"));

            Files.delete(root.resolve("a/renamed/f.txt"));
            Files.delete(root.resolve("a/renamed"));
            // Removed: its own watch names it, and it is walked from the folder above it.
            await().atMost(Duration.ofSeconds(10)).until(() -> walks.get(walks.size() - 1).equals(Optional.of(List.of("a"))));
            assertThat(walks.subList(1, walks.size())).as("no whole walk").allMatch(Optional::isPresent);
        }
    }

    @Test
    void shouldWalkTheWholeFolderAfterAWalkFailed() throws Exception {
        Files.createDirectories(root.resolve("a"));
        AtomicBoolean fail = new AtomicBoolean();
        try (FolderWatch w = watch(Duration.ofHours(1), (t, under, edited, held) -> {
            if (fail.getAndSet(false)) {
                throw new java.io.IOException("the database is away");
            }
            return true;
        })) {
            nextWalk(0);
            fail.set(true);
            Files.writeString(root.resolve("a/f.txt"), "x");
            assertThat(nextWalk(1)).contains(List.of("a"));
            assertThat(nextWalk(2)).as("what that walk would have recorded is found by a whole one (after the pause)").isEmpty();
        }
    }

    @Test
    void shouldNotWalkTheWholeFolderAgainWhenOnlyTheSendingAfterAWalkFailed() throws Exception {
        Files.createDirectories(root.resolve("a"));
        AtomicBoolean fail = new AtomicBoolean();
        try (FolderWatch w = watch(Duration.ofHours(1), (t, under, edited, held) -> {
            if (fail.getAndSet(false)) {
                throw new FolderWatch.AfterWalkException(new java.io.IOException("the hub is away"));
            }
            return true;
        })) {
            nextWalk(0);
            fail.set(true);
            Files.writeString(root.resolve("a/f.txt"), "x");
            assertThat(nextWalk(1)).contains(List.of("a"));
            assertThat(nextWalk(2)).as("tried again after the pause, to send: nothing to walk").contains(List.of());
        }
    }

    @Test
    void shouldKeepWhatItHeardOfAFolderThatWasBusyAndWalkItSoon() throws Exception {
        Files.createDirectories(root.resolve("a"));
        AtomicBoolean busy = new AtomicBoolean();
        try (FolderWatch w = watch(Duration.ofHours(1), (t, under, edited, held) -> !busy.getAndSet(false))) {
            nextWalk(0);
            busy.set(true);
            Files.writeString(root.resolve("a/f.txt"), "x");
            assertThat(nextWalk(1)).contains(List.of("a"));
            assertThat(nextWalk(2)).as("the same folder, again, without a new event").contains(List.of("a"));
        }
    }

    @Test
    void shouldWalkTheFolderOfAFileHeldBackWithTheNextBurstOrSoonWithoutOne() throws Exception {
        Files.createDirectories(root.resolve("a/deeper"));
        Files.createDirectories(root.resolve("b"));
        Files.writeString(root.resolve("a/one.txt"), "1");
        Files.writeString(root.resolve("a/two.txt"), "2");
        // Each walk's held set as it began, when it began and when it ended (System.nanoTime), by walk.
        List<Set<String>> heldAtStart = Collections.synchronizedList(new ArrayList<>());
        List<Long> began = Collections.synchronizedList(new ArrayList<>());
        List<Long> ended = Collections.synchronizedList(new ArrayList<>());
        AtomicBoolean hold = new AtomicBoolean();
        AtomicBoolean otherEnd = new AtomicBoolean();
        try (FolderWatch w = watch(Duration.ofHours(1), (t, under, edited, held) -> {
            began.add(System.nanoTime());
            heldAtStart.add(Set.copyOf(held));
            held.clear();
            if (hold.getAndSet(false)) {
                held.add("a/deeper/gone.txt");
                if (otherEnd.getAndSet(false)) {
                    Files.createFile(root.resolve("b/came.txt")); // a move's other end, heard of in the next burst (one event)
                }
            }
            ended.add(System.nanoTime());
            return true;
        })) {
            nextWalk(0);
            int seen = quiet();
            hold.set(true);
            otherEnd.set(true);
            Files.delete(root.resolve("a/one.txt")); // (one event: one burst)
            assertThat(nextWalk(seen)).contains(List.of("a"));
            assertThat(nextWalk(seen + 1)).as("the folder of what was held back, with the next burst's").contains(List.of("a/deeper", "b"));
            assertThat(heldAtStart.get(seen + 1)).as("handed to the walk that follows").containsExactly("a/deeper/gone.txt");

            seen = quiet();
            hold.set(true);
            Files.delete(root.resolve("a/two.txt"));
            assertThat(nextWalk(seen)).contains(List.of("a"));
            assertThat(nextWalk(seen + 1)).as("no burst follows: walked again soon all the same").contains(List.of("a/deeper"));
            assertThat(began.get(seen + 1) - ended.get(seen)).as("after HOLD_MILLIS, not at once")
                    .isGreaterThanOrEqualTo(java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(FolderWatch.HOLD_MILLIS));
            assertThat(heldAtStart.get(seen + 1)).containsExactly("a/deeper/gone.txt");
            assertThat(quiet()).as("nothing held back any more: no more walks").isEqualTo(seen + 2);
        }
    }

    @Test
    void shouldWatchAFolderGivenAsASymbolicLinkWhereItLeads(@TempDir Path elsewhere) throws Exception {
        Files.createDirectories(root.resolve("a/b"));
        Path link = Files.createSymbolicLink(elsewhere.resolve("images"), root);
        List<Optional<List<String>>> linked = Collections.synchronizedList(new ArrayList<>());
        try (FolderWatch w = new FolderWatch("test-watch", Duration.ofHours(1), () -> List.of(new FolderWatch.Target(CHANNEL, link)),
                (t, under, edited, held) -> linked.add(Optional.ofNullable(under)))) {
            await().atMost(Duration.ofSeconds(10)).until(() -> !linked.isEmpty());
            assertThat(linked.get(0)).as("at start: the whole folder").isEmpty();
            Files.writeString(root.resolve("a/b/f.txt"), "x");
            await().atMost(Duration.ofSeconds(10)).until(() -> linked.contains(Optional.of(List.of("a/b"))));
        }
        // Another channel's folder inside where it leads: that one keeps its watches (the file system watches a folder
        // under one name), and this one is walked at the timed walks only.
        FileChannelSpec other = new FileChannelSpec("other", ChannelSpec.Direction.SITE_TO_HUB, null, List.of(), List.of());
        List<Optional<List<String>>> plain = Collections.synchronizedList(new ArrayList<>());
        try (FolderWatch w = new FolderWatch("test-watch", Duration.ofHours(1),
                () -> List.of(new FolderWatch.Target(other, root.resolve("a")), new FolderWatch.Target(CHANNEL, link)), (t, under, edited, held) -> {
                    if (t.channel().equals(other)) {
                        plain.add(Optional.ofNullable(under));
                    } else {
                        linked.add(Optional.ofNullable(under));
                    }
                    return true;
                })) {
            int before = linked.size();
            await().atMost(Duration.ofSeconds(10)).until(() -> !plain.isEmpty() && linked.size() > before); // both watched
            Files.writeString(root.resolve("a/b/g.txt"), "y");
            await().atMost(Duration.ofSeconds(10)).until(() -> plain.contains(Optional.of(List.of("b"))));
        }
    }

    @Test
    void shouldCatchAtTheNextWholeWalkAChangeNoNotificationNamed(@TempDir Path elsewhere) throws Exception {
        Path f = Files.writeString(Files.createDirectories(root.resolve("a")).resolve("f.txt"), "x");
        Path other = Files.createLink(elsewhere.resolve("f.txt"), f); // the same file, under a folder nobody watches
        try (FolderWatch w = watch(Duration.ofHours(1), (t, under, edited, held) -> true)) {
            nextWalk(0);
            int seen = quiet();
            Files.writeString(other, "changed through its other name");
            await("no notification, no walk").during(Duration.ofSeconds(1)).atMost(Duration.ofSeconds(2)).until(() -> walks.size() == seen);
        }
        walks.clear();
        try (FolderWatch w = watch(Duration.ofMillis(300), (t, under, edited, held) -> true)) {
            nextWalk(0);
            Files.writeString(other, "changed again");
            // With no notification, the timed whole walks keep coming: one of them finds the change (FileChannelTest).
            assertThat(nextWalk(1)).as("the next timed walk").isEmpty();
            assertThat(nextWalk(2)).as("and the next").isEmpty();
        }
    }

    @Test
    void shouldNameTheEditedFilesWhenABurstOnlyEditedFiles() throws Exception {
        Path f = Files.writeString(Files.createDirectories(root.resolve("a/b")).resolve("f.txt"), "x");
        Path g = Files.writeString(root.resolve("a/g.txt"), "y");
        Path top = Files.writeString(root.resolve("top.txt"), "t");
        Path trigger = Files.writeString(root.resolve("a/trigger.txt"), "0");
        List<List<String>> edits = Collections.synchronizedList(new ArrayList<>());
        AtomicBoolean hold = new AtomicBoolean();
        java.util.concurrent.Semaphore inWalk = new java.util.concurrent.Semaphore(0);
        java.util.concurrent.Semaphore gate = new java.util.concurrent.Semaphore(0);
        try (FolderWatch w = watch(Duration.ofHours(1), (t, under, edited, held) -> {
            edits.add(edited);
            if (hold.getAndSet(false)) { // this walk waits while the test makes the next burst's changes
                inWalk.release();
                assertThat(gate.tryAcquire(10, java.util.concurrent.TimeUnit.SECONDS)).isTrue();
            }
            return true;
        })) {
            nextWalk(0);
            assertThat(edits.get(0)).as("the start: a whole walk").isNull();
            int seen = quiet();
            // Changes made while a walk is under way are all taken by the next walk, as one burst.
            hold.set(true);
            Files.writeString(trigger, "1");
            assertThat(inWalk.tryAcquire(10, java.util.concurrent.TimeUnit.SECONDS)).as("a walk under way").isTrue();
            Files.writeString(f, "x2");
            Files.writeString(g, "y2");
            Files.setPosixFilePermissions(top, java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"));
            gate.release();
            nextWalk(seen + 1);
            int after = quiet();
            assertThat(edits.get(seen)).as("the walk that waited").containsExactly("a/trigger.txt");
            // (one walk, unless the file system's events came late: then the files over the next ones)
            assertThat(edits.subList(seen + 1, after)).as("edits only: the files").doesNotContainNull()
                    .flatMap(e -> e).containsExactlyInAnyOrder("a/b/f.txt", "a/g.txt", "top.txt");

            seen = quiet();
            hold.set(true);
            Files.writeString(trigger, "2");
            assertThat(inWalk.tryAcquire(10, java.util.concurrent.TimeUnit.SECONDS)).as("a walk under way").isTrue();
            Files.writeString(f, "x3");
            Files.writeString(root.resolve("a/new.txt"), "n");
            gate.release();
            nextWalk(seen + 1);
            after = quiet();
            assertThat(edits.subList(seen + 1, after)).as("a file made: never named as edited; its folder walked").allMatch(
                    e -> e == null || !e.contains("a/new.txt")).contains((List<String>) null);
            assertThat(walks.subList(seen + 1, after)).contains(Optional.of(List.of("a")));

            seen = quiet();
            Files.setPosixFilePermissions(root.resolve("a/b"), java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"));
            nextWalk(seen);
            assertThat(edits.get(seen)).as("a folder's permissions: it is walked").isNull();
        }
    }

    @Test
    void shouldLeaveTimeBetweenWholeWalksLongerThanTheIntervalForWalksOfWhatChanged() throws Exception {
        Files.createDirectories(root.resolve("a"));
        // Each whole walk takes longer than the interval: the next whole one comes an interval after it ended.
        try (FolderWatch w = watch(Duration.ofMillis(600), (t, under, edited, held) -> {
            if (under == null) {
                Thread.sleep(800);
            }
            return true;
        })) {
            nextWalk(0);
            int seen = walks.size();
            Files.writeString(root.resolve("a/f.txt"), "x");
            await().atMost(Duration.ofSeconds(10)).until(() -> walks.stream().skip(seen).anyMatch(u -> u.equals(Optional.of(List.of("a")))));
        }
    }

    @Test
    void shouldWalkAFolderWhoseNameCannotTravelFromTheNearestOneAboveIt() throws Exception {
        Path odd = Files.createDirectories(root.resolve("a/back\\slash"));
        try (FolderWatch w = watch()) {
            nextWalk(0);
            int seen = quiet();
            Files.writeString(odd.resolve("f.txt"), "x");
            assertThat(nextWalk(seen)).contains(List.of("a"));
        }
        assertThat(FolderWatch.under(root, List.of(odd))).containsExactly("a");
    }

    @Test
    void shouldNameEachFolderOnceAndTheTopmostOfNestedOnes() throws Exception {
        Files.createDirectories(root.resolve("a/b/c"));
        Files.createDirectories(root.resolve("ab"));
        Files.createDirectories(root.resolve("a b"));
        Files.createDirectories(root.resolve("a.d"));
        assertThat(FolderWatch.under(root, List.of(root.resolve("a/b/c"), root.resolve("ab"), root.resolve("a/b"), root.resolve("a/b"))))
                .containsExactly("a/b", "ab");
        assertThat(FolderWatch.under(root, List.of(root.resolve("a"), root.resolve("a b"), root.resolve("a.d"), root.resolve("a/b"))))
                .as("names that sort before '/' do not hide a folder inside another").containsExactly("a", "a b", "a.d");
        assertThat(FolderWatch.under(root, List.of(root.resolve("a/gone/deeper")))).as("gone: the nearest folder above").containsExactly("a");
        assertThat(FolderWatch.under(root, List.of(root.resolve("gone")))).as("gone from the top level: the whole folder").isNull();
        assertThat(FolderWatch.under(root, List.of(root.resolve("a"), root))).isNull();
        assertThat(FolderWatch.under(root, List.of(root.getParent().resolve("elsewhere")))).as("not in this folder").isEmpty();
        List<Path> many = new ArrayList<>();
        for (int i = 0; i <= FolderWatch.MAX_FOLDERS; i++) {
            many.add(Files.createDirectories(root.resolve("many/deep/d" + i + "/e")));
        }
        assertThat(FolderWatch.under(root, many.subList(0, FolderWatch.MAX_FOLDERS))).hasSize(FolderWatch.MAX_FOLDERS);
        assertThat(FolderWatch.under(root, many)).as("more folders than MAX_FOLDERS: the deepest folder holding them all")
                .containsExactly("many/deep");
        List<Path> spread = new ArrayList<>(many);
        spread.add(Files.createDirectories(root.resolve("many-other")));
        assertThat(FolderWatch.under(root, spread)).as("a deepest common folder that is the top: the whole folder").isNull();
        List<Path> prefix = new ArrayList<>(many);
        prefix.add(Files.createDirectories(root.resolve("many/deeper")));
        assertThat(FolderWatch.under(root, prefix)).as("common by whole names, not by characters ('deep', 'deeper')")
                .containsExactly("many");
    }
}
