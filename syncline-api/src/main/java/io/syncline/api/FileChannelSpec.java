package io.syncline.api;

import java.util.List;

/**
 * A file channel: the files of a folder at each node that sync together, next to the tables.
 *
 * @param name      channel name (distinct from every table channel's)
 * @param direction which way its files flow: site-to-hub (into a sub-folder per site at the hub), hub-to-sites, or
 *                  two-way
 * @param sites     hub-to-sites and two-way: which sites take part (a routing expression); null means every site
 * @param include   globs of the files it takes (none: every file); a glob without '/' matches a file name in any folder
 * @param exclude   globs of files it leaves out, applied after {@code include}
 */
public record FileChannelSpec(String name, ChannelSpec.Direction direction, String sites, List<String> include, List<String> exclude) {
    public FileChannelSpec {
        Names.requireValid("file channel", name);
        if (direction == null) {
            direction = ChannelSpec.Direction.SITE_TO_HUB;
        }
        if (sites != null && sites.isBlank()) {
            sites = null;
        }
        if (sites != null && !direction.toSites()) {
            throw new IllegalArgumentException("file channel '" + name + "' selects sites, but only a hub-to-sites or two-way channel can");
        }
        include = include == null ? List.of() : List.copyOf(include);
        exclude = exclude == null ? List.of() : List.copyOf(exclude);
    }
}
