/* Test shared object without sluice_handler_entry_v1: loads fine, must be refused as a plugin. */
int not_a_plugin_answer(void);
int not_a_plugin_answer(void)
{
	return 42;
}
