#ifndef ODDS_CRDKAFKA_SHIM_H
#define ODDS_CRDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#endif
