package io.syncline.engine.files;

import com.dynatrace.hash4j.hashing.HashStream128;
import io.syncline.api.BadBatchException;
import io.syncline.api.SyncException;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.Map;

/*
 * The delta of one file: how the receiver builds the sender's file from chunks it already has (its "basis": the ids
 * of its chunks, in the order it listed them) and bytes sent. The sender cuts its file into chunks (Chunker) and
 * writes, in file order:
 *   'C' int first, int count   copy basis entries first .. first+count-1, in that order (runs of unchanged chunks)
 *   'L' int length, bytes       literal bytes (one chunk; a first copy, not cut: 64 KiB pieces; at most Chunker.MAX)
 *   'E' long size               end: the file's length
 * The receiver writes what the ops say, hashing it (ContentHash), and checks length and hash against what the sender
 * announced before it uses the file: a file that changed at the sender after it was announced, a basis that changed in
 * between, or an id two chunks share, gives a wrong hash and the file is refused, never used. The sender does not hash
 * the whole file again: the receiver's check covers it. Memory: one chunk at a time on both sides.
 */
public final class Delta {
    private static final byte COPY = 'C';
    private static final byte LITERAL = 'L';
    private static final byte END = 'E';

    private Delta() {
    }

    /** A delta that ends early (a cut connection): what was written before is a correct start of the file. */
    public static final class CutException extends BadBatchException {
        CutException(String message) {
            super(SyncException.Stage.TRANSPORT, message);
        }
    }

    /** What one delta carried. */
    public record Stats(long size, String hash, long literalBytes, long copiedBytes) {
    }

    /**
     * Writes the delta of {@code file}, cut with {@code sizes}, against the receiver's basis {@code have} (ids in the
     * receiver's order). The returned stats carry no hash (null).
     */
    public static Stats encode(InputStream file, Chunker.Sizes sizes, ChunkIndex have, DataOutputStream out) throws IOException {
        if (have.size() == 0) {
            return literals(file, out);
        }
        Ops ops = new Ops(out);
        Chunker.scan(file, sizes, (offset, buf, from, len, id) -> {
            int e = have.find(id);
            if (e >= 0) {
                ops.copy(e, len);
            } else {
                ops.literal(buf, from, len);
            }
        });
        return ops.end();
    }

    /** As {@link #encode(InputStream, Chunker.Sizes, ChunkIndex, DataOutputStream)}, of the first {@code length} bytes of {@code content}. */
    public static Stats encode(byte[] content, int length, Chunker.Sizes sizes, ChunkIndex have, DataOutputStream out) throws IOException {
        if (have.size() > 0) {
            return encode(new java.io.ByteArrayInputStream(content, 0, length), sizes, have, out);
        }
        Ops ops = new Ops(out); // (literals straight from the array, each no longer than a read of literals would be)
        for (int at = 0; at < length; at += Chunker.MAX) {
            ops.literal(content, at, Math.min(Chunker.MAX, length - at));
        }
        return ops.end();
    }

    /**
     * The delta of a file the receiver has no chunk of (a first copy): its bytes as literals of the largest size, with
     * no chunking at all, since no boundary could match anything.
     */
    private static Stats literals(InputStream file, DataOutputStream out) throws IOException {
        Ops ops = new Ops(out);
        byte[] buf = Chunker.buffer();
        int n;
        while ((n = file.readNBytes(buf, 0, buf.length)) > 0) {
            ops.literal(buf, 0, n);
        }
        return ops.end();
    }

    /** Writes a delta's ops: copies of consecutive basis entries are sent as one run. */
    private static final class Ops {
        private final DataOutputStream out;
        private int first = -1;
        private int count;
        private long literal;
        private long copied;

        Ops(DataOutputStream out) {
            this.out = out;
        }

        void copy(int entry, int len) throws IOException {
            copied += len;
            if (count > 0 && entry == first + count) {
                count++;
                return;
            }
            flush();
            first = entry;
            count = 1;
        }

        void literal(byte[] buf, int from, int len) throws IOException {
            flush();
            out.writeByte(LITERAL);
            out.writeInt(len);
            out.write(buf, from, len);
            literal += len;
        }

        /** Writes the end record; the stats carry no hash (null). */
        Stats end() throws IOException {
            flush();
            long size = literal + copied;
            out.writeByte(END);
            out.writeLong(size);
            return new Stats(size, null, literal, copied);
        }

        private void flush() throws IOException {
            if (count > 0) {
                out.writeByte(COPY);
                out.writeInt(first);
                out.writeInt(count);
                count = 0;
            }
        }
    }

    /**
     * Reads one delta from {@code in} and writes the file it describes to {@code out}, copying basis chunks from
     * their files, never more than {@code expectedSize} bytes. Returns the length and content hash of what was written; the
     * caller compares them with what was announced.
     *
     * @throws BadBatchException when the stream is not a delta (unknown op, a run outside the basis, a literal longer
     *     than a chunk), or when what was written is not as long as its end record says; {@link CutException} when it
 *     ends early
     */
    public static Stats decode(DataInputStream in, ChunkIndex basis, OutputStream out, String path, long expectedSize) throws IOException {
        HashStream128 hash = ContentHash.stream();
        byte[] buf = Chunker.buffer();
        long size = 0;
        long literal = 0;
        long copied = 0;
        Map<Path, FileChannel> open = new HashMap<>();
        try {
            while (true) {
                int op;
                try {
                    op = in.readUnsignedByte();
                } catch (EOFException e) {
                    throw new CutException("file '" + path + "': the data ends before the file's end record (cut connection?)");
                }
                if (op == COPY) {
                    int first = in.readInt();
                    int count = in.readInt();
                    if (first < 0 || count <= 0 || (long) first + count > basis.size()) {
                        throw bad(path, "copy of chunks " + first + ".." + ((long) first + count - 1) + " outside the "
                                + basis.size() + " chunks the receiver listed");
                    }
                    for (int e = first; e < first + count; e++) {
                        if (size + basis.length(e) > expectedSize) {
                            throw bad(path, "the data builds more than the " + expectedSize + " bytes announced");
                        }
                        FileChannel ch = open.get(basis.source(e));
                        if (ch == null) {
                            ch = FileChannel.open(basis.source(e), StandardOpenOption.READ);
                            open.put(basis.source(e), ch);
                        }
                        int len = basis.length(e);
                        ByteBuffer bb = ByteBuffer.wrap(buf, 0, len);
                        long pos = basis.offset(e);
                        while (bb.hasRemaining()) {
                            if (ch.read(bb, pos + bb.position()) < 0) {
                                throw bad(path, "the receiver's chunk " + e + " is gone from " + basis.source(e).getFileName()
                                        + " (changed while the file was sent)");
                            }
                        }
                        hash.putBytes(buf, 0, len);
                        out.write(buf, 0, len);
                        size += len;
                        copied += len;
                    }
                } else if (op == LITERAL) {
                    int len = in.readInt();
                    if (len <= 0 || len > Chunker.MAX) {
                        throw bad(path, "literal of " + len + " bytes (a chunk is 1 to " + Chunker.MAX + ")");
                    }
                    if (size + len > expectedSize) {
                        throw bad(path, "the data builds more than the " + expectedSize + " bytes announced");
                    }
                    in.readFully(buf, 0, len);
                    hash.putBytes(buf, 0, len);
                    out.write(buf, 0, len);
                    size += len;
                    literal += len;
                } else if (op == END) {
                    long declared = in.readLong();
                    if (declared != size) {
                        throw bad(path, "the file built is " + size + " bytes, the sender's end record says " + declared);
                    }
                    return new Stats(size, ContentHash.hex(hash.get()), literal, copied);
                } else {
                    throw bad(path, "unknown delta op " + op);
                }
            }
        } catch (EOFException e) {
            throw new CutException("file '" + path + "': the data ends in the middle of a record (cut connection?)");
        } finally {
            for (FileChannel ch : open.values()) {
                ch.close();
            }
        }
    }

    private static BadBatchException bad(String path, String what) {
        return new BadBatchException(SyncException.Stage.APPLY, "file '" + path + "': " + what);
    }
}
