/*-------------------------------------------------------------------------
 *
 * modify.c
 *		  Placeholder until the feature lands
 *
 * IDENTIFICATION
 *		  src/modify.c
 *
 *-------------------------------------------------------------------------
 */
#include "kafka_fdw.h"

void
kfdw_set_modify_routines(FdwRoutine *routine)
{
}
