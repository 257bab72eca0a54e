#ifndef ODDS_CHIREDIS_SHIM_H
#define ODDS_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#endif
