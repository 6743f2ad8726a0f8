/*-------------------------------------------------------------------------
 *
 * scan.c
 *		  Placeholder until the feature lands
 *
 * IDENTIFICATION
 *		  src/scan.c
 *
 *-------------------------------------------------------------------------
 */
#include "kafka_fdw.h"

void
kfdw_set_scan_routines(FdwRoutine *routine)
{
}
