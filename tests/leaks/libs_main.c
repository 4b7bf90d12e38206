/* Links libleak_ctor.so and libleak_dtor.so and does nothing itself: every
 * block lost at exit was lost by a library's constructor or destructor. */
int leak_ctor_anchor(void);
int leak_dtor_anchor(void);

int main(void) { return leak_ctor_anchor() + leak_dtor_anchor() - 2; }
