package io.syncline.engine.files;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.syncline.api.UnsafePathException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class SafePathTest {
    @TempDir
    Path tmp;

    @ParameterizedTest(name = "[{index}] {0}")
    @CsvSource(delimiter = '|', value = {
        "../etc/passwd|'..' segment",
        "a/../../b|'..' segment",
        "a/./b|'.' segment",
        "/etc/passwd|is absolute",
        "C:/Windows/x|drive letter",
        "a\\..\\b|backslash",
        "a//b|empty segment",
        "a/b/|empty segment",
        ".syncline-tmp/x.part|working folder",
    })
    void shouldRefuseHostilePathsNamingWhatIsWrong(String path, String reason) {
        assertThatThrownBy(() -> SafePath.check(path)).isInstanceOf(UnsafePathException.class)
                .hasMessageContaining(path.length() > 200 ? path.substring(0, 200) : path).hasMessageContaining(reason);
    }

    @Test
    void shouldRefuseEmptyControlCharactersAndOverlongPaths() {
        assertThatThrownBy(() -> SafePath.check("")).isInstanceOf(UnsafePathException.class).hasMessageContaining("empty");
        assertThatThrownBy(() -> SafePath.check(null)).isInstanceOf(UnsafePathException.class).hasMessageContaining("empty");
        assertThatThrownBy(() -> SafePath.check("a\u0000b")).isInstanceOf(UnsafePathException.class).hasMessageContaining("control character");
        assertThatThrownBy(() -> SafePath.check("a/".repeat(3000) + "b")).isInstanceOf(UnsafePathException.class)
                .hasMessageContaining("longer than 4096");
    }

    @Test
    void shouldAcceptPlainNestedAndUnicodePaths() {
        assertThat(SafePath.check("images/2026/produkt-ä漢字 1.jpg")).isEqualTo("images/2026/produkt-ä漢字 1.jpg");
        assertThat(SafePath.check("..hidden/a..b")).isEqualTo("..hidden/a..b"); // dots inside names are names
    }

    @Test
    void shouldRefuseAWayThroughASymbolicLink() throws Exception {
        Path root = Files.createDirectories(tmp.resolve("root"));
        Path outside = Files.createDirectories(tmp.resolve("outside"));
        Files.createSymbolicLink(root.resolve("escape"), outside);
        Files.createSymbolicLink(root.resolve("file-link"), outside.resolve("secret"));
        assertThatThrownBy(() -> SafePath.resolve(root, "escape/secret")).isInstanceOf(UnsafePathException.class)
                .hasMessageContaining("symbolic link 'escape'");
        assertThatThrownBy(() -> SafePath.resolve(root, "file-link")).isInstanceOf(UnsafePathException.class)
                .hasMessageContaining("symbolic link 'file-link'");
        assertThat(SafePath.resolve(root, "images/a.jpg")).isEqualTo(root.resolve("images").resolve("a.jpg"));
    }

    @Test
    void shouldRefuseAFileUsedAsAFolder() throws Exception {
        Files.writeString(tmp.resolve("a"), "x");
        assertThatThrownBy(() -> SafePath.resolve(tmp, "a/b")).isInstanceOf(UnsafePathException.class)
                .hasMessageContaining("'a' is a file, not a folder");
    }
}
