/*
** relay.h — procy's relay between two sockets (relay.c), run before Lua
** starts: `procy __relay LISTEN CONNECT`, `procy __box ... -- ARGV`.
*/
#ifndef PROCY_RELAY_H
#define PROCY_RELAY_H

/* argv as main has it (argv[1] is "__relay" or "__box"): the exit status
   (the box runs ARGV in its place, when it can). */
int relay_main(int argc, char **argv);
int box_main(int argc, char **argv);
int net_main(int argc, char **argv);

#endif
