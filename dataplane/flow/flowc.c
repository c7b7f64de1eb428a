/* sigflow-flowc — standalone `definition check`: compile .flow files (see flow_check.c). */
#include "flow.h"

int main(int argc, char **argv)
{
    return flow_check_main(argc, argv);
}
