/*-------------------------------------------------------------------------
 *
 * planner.c
 *		  Placeholder until the feature lands
 *
 * IDENTIFICATION
 *		  src/planner.c
 *
 *-------------------------------------------------------------------------
 */
#include "kafka_fdw.h"

void
kfdw_set_plan_routines(FdwRoutine *routine)
{
}
