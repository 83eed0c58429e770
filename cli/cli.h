/* cli.h — the castgate subcommands (SPEC OPS-1). Each returns the process
 * exit code; argv[0] is the subcommand name, settings already consumed. */
#ifndef CLI_CLI_H
#define CLI_CLI_H

#include "core/config.h"

int cli_serve(struct config *cfg, int argc, char **argv);
int cli_migrate(struct config *cfg, int argc, char **argv);
int cli_app(struct config *cfg, int argc, char **argv);
int cli_sweep(struct config *cfg, int argc, char **argv);

/* The conninfo to use: database_url, or the local server scripts/pg.sh
 * starts under data_dir (socket in data_dir/pg/run). */
void cli_database_conninfo(const struct config *cfg, char *out, size_t outlen);
/* True if argv holds --help / -h. */
int cli_wants_help(int argc, char **argv);

#define CASTGATE_VERSION "0.1.0"

#endif
