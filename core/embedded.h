/* embedded.h — files compiled into the binary by scripts/embed.sh
 * (SQL migrations, the player page). Each table ends with {NULL, NULL, 0};
 * data is NUL-terminated for convenience, len excludes the NUL. */
#ifndef CORE_EMBEDDED_H
#define CORE_EMBEDDED_H

#include <stddef.h>

struct embedded_file {
    const char *name;
    const unsigned char *data;
    size_t len;
};

extern const struct embedded_file migrations[];
extern const struct embedded_file web_assets[];

#endif
